"""Redis cache for hot order reads (`GET /api/v1/orders/{id}/`).

Entries are versioned: `"<version>|<json>"`, or `"<version>|"` for a tombstone that a
committed write leaves behind. A Lua script only lets a newer version replace an older one,
so a reader that loaded version 3 just before a write of version 4 committed can never
overwrite the tombstone and serve a stale order. When Redis is down, reads go to the
database and report `degraded`; a short circuit breaker keeps every request from waiting
on a dead socket.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from config import metrics

logger = logging.getLogger(__name__)

HIT, MISS, DEGRADED = "hit", "miss", "degraded"
_BREAKER_SECONDS = 5.0
_broken_until = 0.0

# KEYS: the entries; ARGV: ttl, body ('' for tombstones), then one version per key.
_SET_IF_NEWER = """
local ttl, body = ARGV[1], ARGV[2]
local tombstone = body == ''
local function newer(current, version)
  if not current then return true end
  local sep = string.find(current, '|', 1, true)
  local current_version = tonumber(string.sub(current, 1, sep - 1))
  if not tombstone and sep == string.len(current) then
    return version >= current_version
  end
  return version > current_version
end
local written = 0
for i, key in ipairs(KEYS) do
  local version = tonumber(ARGV[i + 2])
  if newer(redis.call('GET', key), version) then
    redis.call('SET', key, version .. '|' .. body, 'EX', ttl)
    written = written + 1
  end
end
return written
"""
_script = None


def _key(order_id: int) -> str:
    return f"order:v1:{order_id}"


def _redis():
    """The raw client when the cache is django-redis, else None (local-memory cache)."""
    if not hasattr(cache, "client"):
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def _available() -> bool:
    return time.monotonic() >= _broken_until


def _trip(exc: Exception) -> None:
    global _broken_until
    _broken_until = time.monotonic() + _BREAKER_SECONDS
    logger.warning("order cache unavailable, reading from the database: %s", exc)


def order_cache_get(order_id: int) -> tuple[bytes | None, int | None, str]:
    """(json, version, hit|miss|degraded) for the order; json is None unless a hit."""
    found = _lookup(order_id)
    metrics.cache_request(found[2])
    return found


def _lookup(order_id: int) -> tuple[bytes | None, int | None, str]:
    if not _available():
        return None, None, DEGRADED
    client = _redis()
    try:
        raw = client.get(cache.make_key(_key(order_id))) if client else cache.get(_key(order_id))
    except RedisError as exc:
        _trip(exc)
        return None, None, DEGRADED
    if not raw:
        return None, None, MISS
    raw = raw if isinstance(raw, bytes) else raw.encode()
    version, _, body = raw.partition(b"|")
    return (body, int(version), HIT) if body else (None, None, MISS)


def _set_if_newer(versions: dict[int, int], body: bytes) -> None:
    """Store `body` (b"" for a tombstone) at each order's version, where it is newer than
    what the cache holds: one Redis round trip, however many orders."""
    global _script
    if not _available() or not versions:
        return
    client = _redis()
    ttl = settings.ORDER_CACHE_TTL_SECONDS
    try:
        if client is None:
            for order_id, version in versions.items():
                current = cache.get(_key(order_id))
                current_version = int(current.partition(b"|")[0]) if current else 0
                if version >= current_version:
                    cache.set(_key(order_id), b"%d|%s" % (version, body), ttl)
            return
        if _script is None:
            _script = client.register_script(_SET_IF_NEWER)  # EVALSHA, loaded once
        _script(
            keys=[cache.make_key(_key(order_id)) for order_id in versions],
            args=[ttl, body, *versions.values()],
            client=client,
        )
    except RedisError as exc:
        _trip(exc)


def order_cache_put(order_id: int, version: int, body: bytes) -> None:
    _set_if_newer({order_id: version}, body)


def order_cache_invalidate(order_id: int, version: int) -> None:
    """Called on commit of a write that produced `version`."""
    _set_if_newer({order_id: version}, b"")


def order_cache_invalidate_many(versions: dict[int, int]) -> None:
    """Tombstones for many orders (order id -> new version) in one Redis round trip."""
    _set_if_newer(versions, b"")
