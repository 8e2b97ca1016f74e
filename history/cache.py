"""Redis cache of aggregates' representations (today: orders, for `GET /orders/{id}/`).

Entries are versioned: `"<version>|<json>"`, or `"<version>|"` for a tombstone that the
recorder leaves when a write commits. A Lua script only lets a newer version replace an
older one, so a reader that loaded version 3 just before a write of version 4 committed can
never overwrite the tombstone and serve a stale order. When Redis is down, reads go to the
database and report `degraded`; a short circuit breaker keeps every request from waiting on
a dead socket. Without `REDIS_URL` the cache is off.

Every key carries this database's instance id (`history.models.Instance`), so two databases
behind one Redis never read each other's entries. A process reads the id again whenever it
opens a database connection (`namespace_forget`, connected in `history.apps`).
"""

import logging
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from config.redis_breaker import RedisBreaker
from config.replica import read_alias
from history import metrics
from history.metrics import DEGRADED, HIT, MISS
from history.models import Instance

logger = logging.getLogger(__name__)

OFF = "off"
CACHED_AGGREGATES = frozenset({"order"})
_breaker = RedisBreaker("order cache")
_namespace: str | None = None

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


class CacheRead(NamedTuple):
    body: bytes | None  # None unless a hit
    version: int | None
    status: str  # hit, miss, degraded or off


def namespace_forget(**kwargs) -> None:
    """Read the instance id again before the next cache access (a new connection may lead
    to another database)."""
    global _namespace
    _namespace = None


def namespace() -> str:
    """This database's instance id (hex), read once per connection: every cache key carries
    it (the API token cache's too: `history.apps` hands it to `config.token_cache`)."""
    global _namespace
    if _namespace is None:
        _namespace = Instance.objects.get_or_create(pk=1)[0].instance_id.hex
    return _namespace


def _key(aggregate_type: str, aggregate_id: str) -> str:
    return cache.make_key(f"{namespace()}:{aggregate_type}:v1:{aggregate_id}")


def _client():
    """The raw Redis client, or None when the cache is off or tripped."""
    return _breaker.client() if settings.REDIS_URL else None


class CachePrefetch:
    """An entry read ahead, in the Redis round trip of the request's token lookup (a rider
    of config.token_cache.token_cache_read): `GET /orders/{id}/` then costs one round trip.
    Read a few microseconds before the view would, and used only once the request is
    authenticated and allowed."""

    def __init__(self, aggregate_type: str, aggregate_id: str):
        self.key = _key(aggregate_type, aggregate_id) if settings.REDIS_URL else None
        self.raw: bytes | None = None
        self.done = False

    def queue(self, pipe) -> int:
        if self.key is None:
            return 0
        pipe.get(self.key)
        return 1

    def received(self, results: list) -> None:
        if results:
            self.raw, self.done = results[0], True


def cache_read(
    aggregate_type: str, aggregate_id: str, prefetched: CachePrefetch | None = None
) -> CacheRead:
    if not settings.REDIS_URL:
        return CacheRead(None, None, OFF)
    if prefetched is not None and prefetched.done:
        found = _entry(prefetched.raw)
    else:
        found = _lookup(aggregate_type, aggregate_id)
    metrics.cache_request(found.status)
    return found


def _lookup(aggregate_type: str, aggregate_id: str) -> CacheRead:
    client = _client()
    if client is None:
        return CacheRead(None, None, DEGRADED)
    try:
        raw = client.get(_key(aggregate_type, aggregate_id))
    except RedisError as exc:
        _breaker.trip(exc)
        return CacheRead(None, None, DEGRADED)
    return _entry(raw)


def _entry(raw: bytes | None) -> CacheRead:
    if not raw:
        return CacheRead(None, None, MISS)
    version, _, body = raw.partition(b"|")
    return CacheRead(body, int(version), HIT) if body else CacheRead(None, None, MISS)


def cache_fill(aggregate_type: str, aggregate_id: str, version: int, body: bytes) -> None:
    """Store a representation read from the database, unless the cache holds a newer one.
    Not one read from the read replica: the tombstone that keeps an older version out only
    lives ORDER_CACHE_TTL_SECONDS (or less, if Redis evicts it), and a client reading its
    own write from the primary must never be served the replica's older version here."""
    if read_alias() is not None:
        return
    _set_if_newer({(aggregate_type, aggregate_id): version}, body)


def cache_tombstones(versions: dict[tuple[str, str], int]) -> None:
    """On commit of a write: (aggregate type, id) -> the version it produced, for every
    cached aggregate, in one Redis round trip."""
    cached = {key: v for key, v in versions.items() if key[0] in CACHED_AGGREGATES}
    _set_if_newer(cached, b"")


def _set_if_newer(versions: dict[tuple[str, str], int], body: bytes) -> None:
    global _script
    client = _client() if versions else None
    if client is None:
        return
    try:
        if _script is None:
            _script = client.register_script(_SET_IF_NEWER)  # EVALSHA, loaded once
        _script(
            keys=[_key(*key) for key in versions],
            args=[settings.ORDER_CACHE_TTL_SECONDS, body, *versions.values()],
            client=client,
        )
    except RedisError as exc:
        _breaker.trip(exc)
