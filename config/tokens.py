"""API tokens: create, revoke, parse (the model is config.models.ApiToken).

A token is `ot_<prefix>_<secret>`: the prefix (8 lowercase letters and digits) finds the row,
the secret (32 random bytes from `secrets`, base64url) is checked against its stored
SHA-256. The secret has 256 bits of entropy, so a fast hash is enough: nobody can guess
their way back from a digest. The token string exists only in the answer that creates it."""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import DomainValidationError, NotFound
from config.models import PREFIX_ALPHABET, PREFIX_LENGTH, ApiToken
from config.token_cache import token_cache_forget

TOKEN_SCHEME = "ot"
SECRET_BYTES = 32


class AuthenticatedToken(NamedTuple):
    """`request.auth` of a token request: which token it was (throttling keys on `id`)."""

    id: int
    prefix: str
    expires_at: datetime


class IssuedToken(NamedTuple):
    token: ApiToken
    key: str  # the whole token string: shown once, never stored


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def digest_matches(secret: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(secret), digest)


def token_parse(key: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed token string, else None."""
    scheme, _, rest = key.partition("_")
    prefix, _, secret = rest.partition("_")
    if (
        scheme != TOKEN_SCHEME
        or len(prefix) != PREFIX_LENGTH
        or not set(prefix) <= set(PREFIX_ALPHABET)
        or len(secret) < 32
    ):
        return None
    return prefix, secret


def _lifetime_days(days: int | None) -> int:
    if days is None:
        days = settings.API_TOKEN_TTL_DAYS
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise DomainValidationError(
            f"A token lives from 1 to {settings.API_TOKEN_MAX_DAYS} days, not {days}.",
            field="days",
        )
    return days


def api_token_create(*, user, name: str, days: int | None = None) -> IssuedToken:
    """A new token for `user`, valid for `days` (API_TOKEN_TTL_DAYS by default, at most
    API_TOKEN_MAX_DAYS)."""
    lifetime = timedelta(days=_lifetime_days(days))
    now = timezone.now()
    for _ in range(5):
        prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
        secret = secrets.token_urlsafe(SECRET_BYTES)
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    name=name,
                    prefix=prefix,
                    digest=token_digest(secret),
                    created_at=now,
                    expires_at=now + lifetime,
                )
        except IntegrityError:  # the prefix is taken (1 in 2.8e12 per existing token)
            continue
        return IssuedToken(token, f"{TOKEN_SCHEME}_{prefix}_{secret}")
    raise RuntimeError("Could not find a free token prefix in 5 tries.")


def api_tokens_revoke(*, token_ids, user=None) -> int:
    """Revoke the tokens (only `user`'s own, when given); a token already revoked keeps the
    time it was revoked. Returns how many were revoked now. Takes effect on the next request
    in every process: the database says so, and the token cache forgets them."""
    tokens = ApiToken.objects.filter(pk__in=token_ids)
    if user is not None:
        tokens = tokens.filter(user=user)
    with transaction.atomic():
        prefixes = list(tokens.values_list("prefix", flat=True))
        revoked = tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        token_cache_forget(prefixes)
    return revoked


def api_token_revoke(*, token_id: int, user) -> ApiToken:
    """Revoke one of `user`'s own tokens; another user's token does not exist for them."""
    token = ApiToken.objects.filter(pk=token_id, user=user).first()
    if token is None:
        raise NotFound("API token", token_id)
    if token.revoked_at is None:
        api_tokens_revoke(token_ids=[token.pk], user=user)
        token.refresh_from_db(fields=["revoked_at"])
    return token
