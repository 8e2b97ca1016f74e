"""Redis cache of API token lookups, so that a token request costs no database statement.

An entry holds what `config.api.authentication` reads from the database for a token: the
token's id, digest, expiry and whether it is revoked, its user's id, username and flags, and
the user's role names (never the secret, never a password hash). It lives
API_TOKEN_CACHE_SECONDS (60 s by default).

On only with REDIS_URL: one cache that every process shares, so that one process's
invalidation reaches all of them (a local-memory cache could not). Every key carries the
database's instance id (registered by `history.apps`; without it the cache stays off), so two
databases behind one Redis never read each other's tokens.

Invalidation is explicit. Whatever can make an entry wrong writes a tombstone over it: a
token revoked (`config.tokens`), saved or deleted; a user saved (deactivated, renamed, made
superuser or staff); a role given or taken (group membership); a group renamed or deleted.
The tombstone is written at once and again after the change commits, and entries are only
written where no key exists (SET NX), so a request that read the database just before the
commit cannot put its stale entry back. While a tombstone lives (as long as an entry would),
that token is read from the database.

Not seen: changes made in SQL or with QuerySet.update() on users, groups or tokens (use the
admin, save() or the services); they count once the entry expires. If Redis cannot be
reached, lookups go to the database; a tombstone that could not be written is logged as an
error, and the entry it should have replaced lives out its lifetime."""

import logging
from collections.abc import Callable, Iterable, Sequence

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from config.redis_breaker import RedisBreaker

logger = logging.getLogger(__name__)

_TOMBSTONE = b"-"
_breaker = RedisBreaker("API token cache")
_namespace_of: Callable[[], str] | None = None


def namespace_register(provider: Callable[[], str]) -> None:
    """The function that names this database (its instance id); keys carry it."""
    global _namespace_of
    _namespace_of = provider


def enabled() -> bool:
    return (
        bool(settings.REDIS_URL)
        and settings.API_TOKEN_CACHE_SECONDS > 0
        and _namespace_of is not None
    )


def _key(prefix: str) -> str:
    return cache.make_key(f"{_namespace_of()}:apitoken:v1:{prefix}")


def _client():
    return _breaker.client() if enabled() else None


def token_cache_read(prefix: str, riders: Sequence = ()) -> tuple[list | None, bool]:
    """(the cached entry or None, whether the caller may store what it reads instead).
    The riders' commands go in the same round trip: each one's `queue(pipeline)` adds
    them and says how many, its `received(results)` gets their results (the rate limit's
    count, the order cache's prefetch). A rider whose results never came is left as it was."""
    client = _client()
    if client is None:
        return None, False
    try:
        if not riders:
            raw = client.get(_key(prefix))
        else:
            pipe = client.pipeline(transaction=False)
            pipe.get(_key(prefix))
            counts = [rider.queue(pipe) for rider in riders]
            raw, *results = pipe.execute()
            for rider, count in zip(riders, counts, strict=True):
                rider.received(results[:count])
                results = results[count:]
    except RedisError as exc:
        _breaker.trip(exc)
        return None, False
    if raw is None:
        return None, True
    if raw == _TOMBSTONE:
        return None, False
    return orjson.loads(raw), False


def token_cache_fill(prefix: str, entry: list) -> None:
    """Store an entry read from the database, unless the key holds anything (a tombstone)."""
    client = _client()
    if client is None:
        return
    try:
        client.set(_key(prefix), orjson.dumps(entry), ex=settings.API_TOKEN_CACHE_SECONDS, nx=True)
    except RedisError as exc:
        _breaker.trip(exc)


def _tombstone(prefixes: list[str]) -> None:
    if not enabled():
        return
    try:
        # Even with the breaker open: an invalidation is always worth a try.
        pipe = get_redis_connection("default").pipeline(transaction=False)
        for prefix in prefixes:
            pipe.set(_key(prefix), _TOMBSTONE, ex=settings.API_TOKEN_CACHE_SECONDS)
        pipe.execute()
    except RedisError as exc:
        _breaker.trip(exc)
        logger.error(
            "API token cache: could not invalidate %d token(s) (prefixes %s); their cached "
            "entries live up to %s s more: %s",
            len(prefixes),
            ", ".join(prefixes),
            settings.API_TOKEN_CACHE_SECONDS,
            exc,
        )


def token_cache_forget(prefixes: Iterable[str]) -> None:
    """Tombstones over these tokens' entries: now, and again when the current transaction
    commits."""
    if not enabled():
        return
    prefixes = list(prefixes)
    if not prefixes:
        return
    _tombstone(prefixes)
    if connection.in_atomic_block:
        transaction.on_commit(lambda: _tombstone(prefixes))


def user_tokens_forget(user_ids: Iterable[int]) -> None:
    """Tombstones over every token of these users."""
    if not enabled():
        return
    from config.models import ApiToken

    user_ids = [pk for pk in user_ids if pk is not None]
    if user_ids:
        prefixes = ApiToken.objects.filter(user_id__in=user_ids).values_list("prefix", flat=True)
        token_cache_forget(prefixes)


# --- what makes an entry wrong (connected in config.apps) ----------------------------------


def on_user_saved(sender, instance, update_fields=None, **kwargs) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login changes nothing that a token request reads
    user_tokens_forget([instance.pk])


def on_memberships_changed(sender, instance, action, reverse, model, pk_set, **kwargs) -> None:
    # Forward: user.groups.add(...), instance is a user. Reverse: group.user_set.add(...),
    # instance is a group and pk_set holds users.
    if action in ("post_add", "post_remove"):
        users = pk_set if reverse else [instance.pk]
    elif action == "pre_clear":
        users = (
            model._default_manager.filter(groups=instance).values_list("pk", flat=True)
            if reverse
            else [instance.pk]
        )
    else:
        return
    user_tokens_forget(users)


def on_group_changed(sender, instance, created=False, **kwargs) -> None:
    """A group renamed (post_save) or about to be deleted (pre_delete): its role name
    changes for every member."""
    if created or not enabled():
        return
    members = instance.user_set.values_list("pk", flat=True)
    user_tokens_forget(members)


def on_token_changed(sender, instance, created=False, **kwargs) -> None:
    if not created:
        token_cache_forget([instance.prefix])
