"""`Authorization: Token ot_<prefix>_<secret>` (config.tokens, config.models.ApiToken).

A token request reads the token, its user and the user's role names in one statement (a
join, the roles as an array), or, with Redis, from the token cache (`config.token_cache`),
whose entries every revocation, user change and role change replaces by a tombstone at once.
Either way a revoked or expired token and a deactivated user are refused on the very next
request, in every process. `last_used_at` is written at most once a minute per token, never
on every request."""

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from config.api.throttling import count_ahead, failed_authentication_count
from config.logging import user_bind
from config.models import ApiToken
from config.token_cache import token_cache_fill, token_cache_read
from config.tokens import AuthenticatedToken, digest_matches, token_parse

_clock = time.time
LAST_USED_EVERY_SECONDS = 60.0
# Tokens this process marked used, and when (so that a cached entry's older last_used_at
# does not send an UPDATE on every request); bookkeeping only, never trusted for access.
_touched: dict[int, float] = {}
_TOUCHED_MAX = 10_000


@cache
def _user_fields() -> tuple[str, ...]:
    """The user's fields a token request loads, in the model's order (as Model.from_db
    wants them). The API reads no others; any other is loaded if something reads it."""
    user_model = get_user_model()
    wanted = {user_model._meta.pk.attname, user_model.USERNAME_FIELD}
    wanted |= {"is_active", "is_staff", "is_superuser"}
    return tuple(f.attname for f in user_model._meta.concrete_fields if f.attname in wanted)


@cache
def _lookup_statement() -> str:
    user_model = get_user_model()
    groups = user_model._meta.get_field("groups")
    membership = groups.remote_field.through._meta
    group = groups.related_model._meta
    qn = connection.ops.quote_name
    member_user = qn(membership.get_field(groups.m2m_field_name()).column)
    member_group = qn(membership.get_field(groups.m2m_reverse_field_name()).column)
    user_columns = ", ".join(
        f"u.{qn(user_model._meta.get_field(name).column)}" for name in _user_fields()
    )
    return (
        "SELECT t.id, t.digest, t.expires_at, t.revoked_at IS NOT NULL, t.last_used_at, "
        f"ARRAY(SELECT g.{qn('name')} FROM {qn(membership.db_table)} m "
        f"JOIN {qn(group.db_table)} g ON g.{qn(group.pk.column)} = m.{member_group} "
        f"WHERE m.{member_user} = t.user_id), {user_columns} "
        f"FROM {qn(ApiToken._meta.db_table)} t "
        f"JOIN {qn(user_model._meta.db_table)} u ON u.{qn(user_model._meta.pk.column)} = t.user_id "
        "WHERE t.prefix = %s"
    )


def _entry_from_database(prefix: str) -> list | None:
    """[token id, digest, expires (epoch), revoked, last used (epoch or None), role names,
    user values (_user_fields)], the shape the token cache keeps."""
    with connection.cursor() as cursor:
        cursor.execute(_lookup_statement(), [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    token_id, digest, expires_at, revoked, last_used_at, roles, *user_values = row
    last_used = last_used_at.timestamp() if last_used_at is not None else None
    return [token_id, digest, expires_at.timestamp(), revoked, last_used, roles, user_values]


def _touch(token_id: int, now: float) -> None:
    """Mark the token used now, unless another request did within the minute. Never waits
    for a lock: a request whose transaction holds the row (an Idempotency-Key write) keeps it
    until it commits, and this is not worth waiting for."""
    table = connection.ops.quote_name(ApiToken._meta.db_table)
    moment = datetime.fromtimestamp(now, UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_used_at = %s WHERE id = ("
            f"SELECT id FROM {table} WHERE id = %s"
            " AND (last_used_at IS NULL OR last_used_at < %s) FOR UPDATE SKIP LOCKED)",
            [moment, token_id, datetime.fromtimestamp(now - LAST_USED_EVERY_SECONDS, UTC)],
        )
    if len(_touched) >= _TOUCHED_MAX:
        _touched.clear()
    _touched[token_id] = now


def token_authenticate(key: str, riders: Sequence = ()):
    """(user, AuthenticatedToken) for a valid token string; AuthenticationFailed otherwise.
    The riders' Redis commands go in the token cache's round trip (config.token_cache)."""
    parsed = token_parse(key)
    if parsed is None:
        raise AuthenticationFailed("Invalid token.")
    prefix, secret = parsed
    now = _clock()
    entry, may_fill = token_cache_read(prefix, riders)
    from_database = entry is None
    if from_database:
        entry = _entry_from_database(prefix)
    if entry is None or not digest_matches(secret, entry[1]):
        raise AuthenticationFailed("Invalid token.")
    token_id, _, expires, revoked, last_used, roles, user_values = entry
    if revoked:
        raise AuthenticationFailed("This token was revoked.", code="token_revoked")
    if expires <= now:
        raise AuthenticationFailed(
            f"This token expired at {datetime.fromtimestamp(expires, UTC).isoformat()}; "
            "issue a new one.",
            code="token_expired",
        )
    user = get_user_model().from_db(DEFAULT_DB_ALIAS, _user_fields(), user_values)
    if not user.is_active:
        raise AuthenticationFailed("User inactive or deleted.", code="user_inactive")
    user._role_names = frozenset(roles)  # config.roles.user_roles reads them from here
    if now - max(last_used or 0.0, _touched.get(token_id, 0.0)) >= LAST_USED_EVERY_SECONDS:
        _touch(token_id, now)
        entry[4] = now
    if from_database and may_fill:
        token_cache_fill(prefix, entry)
    return user, AuthenticatedToken(token_id, prefix, datetime.fromtimestamp(expires, UTC))


class ApiTokenAuthentication(BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            failed_authentication_count(request)
            raise AuthenticationFailed("Invalid token header: send 'Token <token>'.")
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            failed_authentication_count(request)
            raise AuthenticationFailed("Invalid token.") from exc
        # The rate limit's count, and what the view asked to read ahead (history.cache).
        ahead = count_ahead(key)
        riders = [ahead, *getattr(request, "redis_riders", ())]
        try:
            user, token = token_authenticate(key, riders)
        except AuthenticationFailed:
            failed_authentication_count(request)
            raise
        user_bind(user)  # the log lines from here on carry the user (config.logging)
        request.count_ahead = ahead  # the throttle's (config.api.throttling)
        return user, token

    def authenticate_header(self, request) -> str:
        return self.keyword
