"""Reads from a streaming read replica, with read-your-writes (README, "Read replica").

With DATABASE_REPLICA_URL set, the database alias `replica` is a hot standby of the primary,
and the GET endpoints that only read (`config.api.replica.ReplicaReadMixin`) may be served
from it. Nothing else is: the router (`config.db_router`) sends a query there only inside
such a request (`read_alias`), and never inside a transaction on the primary.

Read-your-writes rests on the primary's WAL position, an LSN. A write request's response
carries `X-Commit-LSN`, the primary's WAL insert position once the request has committed,
and the position is remembered for the user for REPLICA_READ_YOUR_WRITES_SECONDS (in Redis,
so every process knows it; the highest wins). A read goes to the replica only if the replica
has replayed up to the highest of that and the request's `X-Min-LSN`.

Each process checks the replica at most every REPLICA_CHECK_INTERVAL_SECONDS: the primary's
WAL position first, then the replica's replay position and the age of the last transaction
it replayed. A replica that cannot be reached, is not in recovery (promoted, or not a
standby at all) or lags more than REPLICA_MAX_LAG_SECONDS gets no reads, and `/readyz` and
`/metrics` say so. Replay only moves forward, so a position remembered from the last check
can only be too old: that sends a read to the primary, never a stale read to the replica."""

import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import MiddlewareNotUsed
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from config.redis_breaker import RedisBreaker

logger = logging.getLogger(__name__)

REPLICA = "replica"
COMMIT_LSN_HEADER = "X-Commit-LSN"
MIN_LSN_HEADER = "X-Min-LSN"
READ_FROM_HEADER = "X-Read-From"

# What a check found. Only OK lets reads through.
OK, LAGGING, DOWN, NOT_STANDBY, UNKNOWN = "ok", "lagging", "down", "not_standby", "unknown"
# A replica that is down costs a check up to its connect timeout: check it less often.
_DOWN_RECHECK_SECONDS = 5.0

READS = Counter(
    "ordertrack_replica_reads_total",
    "Read requests that may use the replica, by the database they were sent to "
    "(replica|primary) and why.",
    ["database", "reason"],
)
# Labelled by the database alias, so that no series exists until a replica is checked.
HEALTHY = Gauge(
    "ordertrack_replica_healthy",
    "1 while the replica gets reads (reachable, a standby, within REPLICA_MAX_LAG_SECONDS).",
    ["alias"],
    multiprocess_mode="livemostrecent",
)
LAG_SECONDS = Gauge(
    "ordertrack_replica_lag_seconds",
    "How old the replica's data may be: 0 when it has replayed the primary's WAL position.",
    ["alias"],
    multiprocess_mode="livemostrecent",
)
LAG_BYTES = Gauge(
    "ordertrack_replica_lag_bytes",
    "WAL the primary has written and the replica has not replayed yet.",
    ["alias"],
    multiprocess_mode="livemostrecent",
)


def configured() -> bool:
    return REPLICA in settings.DATABASES


# --- LSNs -------------------------------------------------------------------------------------

_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


def lsn_parse(text: str) -> int:
    """A pg_lsn as PostgreSQL writes it ('16/B374D848': the high and the low 32 bits, in
    hex) as an int, which orders as pg_lsn does. ValueError for anything else."""
    match = _LSN.fullmatch(text)
    if match is None:
        raise ValueError(f"not an LSN: {text!r}")
    return int(match[1], 16) << 32 | int(match[2], 16)


def lsn_format(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def commit_lsn() -> int:
    """The primary's WAL insert position: past the commit record of every transaction this
    connection has committed, whatever synchronous_commit was (the write position, or the
    flush position, can still be short of an asynchronous commit)."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        return lsn_parse(cursor.fetchone()[0])


# --- What a process knows of the replica --------------------------------------------------------


@dataclass(frozen=True)
class ReplicaStatus:
    state: str
    replay_lsn: int | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    checked_at: float = 0.0  # time.monotonic() when the check began
    error: str = ""  # the type of the error that made it DOWN


class ReplicaTracker:
    """What the checks of the replica found: the last one's result, and when the replica was
    last seen caught up with the primary."""

    def __init__(self):
        self.status: ReplicaStatus | None = None
        self.caught_up_at: float | None = None
        self.replayed: int | None = None  # the replay position the last check saw
        self.lock = threading.Lock()

    def observe(
        self,
        *,
        started: float,
        now: float,
        primary_lsn: int,
        in_recovery: bool,
        replay_lsn: int | None,
        replay_age: float | None,
    ) -> ReplicaStatus:
        """Record one check: the primary's WAL position, read at `started`, then what the
        replica said (its replay position, the age of the last transaction it replayed)."""
        if not in_recovery or replay_lsn is None:
            self.caught_up_at = None
            return self._keep(ReplicaStatus(NOT_STANDBY, checked_at=started))
        if self.replayed is not None and replay_lsn < self.replayed:
            self.caught_up_at = None  # replay went back: another server, or a restored one
        self.replayed = replay_lsn
        behind = max(0, primary_lsn - replay_lsn)
        if behind == 0:
            self.caught_up_at = started
            seconds = 0.0
        else:
            # Two bounds of how old its data may be, both safe, each too high at times: the
            # time since it was last seen caught up (all WAL written before that check is
            # replayed), and the age of the last transaction it replayed (every earlier
            # commit is replayed; after a quiet hour it says an hour for the next write).
            bounds = [replay_age] if replay_age is not None else []
            if self.caught_up_at is not None:
                bounds.append(now - self.caught_up_at)
            seconds = max(0.0, min(bounds)) if bounds else None
        healthy = seconds is not None and seconds <= settings.REPLICA_MAX_LAG_SECONDS
        return self._keep(
            ReplicaStatus(OK if healthy else LAGGING, replay_lsn, behind, seconds, started)
        )

    def failed(self, state: str, exc: BaseException, *, started: float) -> ReplicaStatus:
        return self._keep(ReplicaStatus(state, checked_at=started, error=type(exc).__name__))

    def _keep(self, status: ReplicaStatus) -> ReplicaStatus:
        self.status = status
        HEALTHY.labels(REPLICA).set(1 if status.state == OK else 0)
        for gauge, value in ((LAG_SECONDS, status.lag_seconds), (LAG_BYTES, status.lag_bytes)):
            gauge.labels(REPLICA).set(float("nan") if value is None else value)
        return status


_tracker = ReplicaTracker()
_CHECK = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
)


def _fresh(status: ReplicaStatus | None) -> bool:
    if status is None:
        return False
    max_age = settings.REPLICA_CHECK_INTERVAL_SECONDS
    if status.state == DOWN:
        max_age = max(max_age, _DOWN_RECHECK_SECONDS)
    return time.monotonic() - status.checked_at < max_age


def replica_status() -> ReplicaStatus:
    """This process's view of the replica, checked again once it is older than
    REPLICA_CHECK_INTERVAL_SECONDS (two queries: one on each database). One thread checks at
    a time; the others use the previous result meanwhile (UNKNOWN before the first)."""
    status = _tracker.status
    if _fresh(status):
        return status
    if not _tracker.lock.acquire(blocking=False):
        return status or ReplicaStatus(UNKNOWN)
    try:
        return _tracker.status if _fresh(_tracker.status) else _check()
    finally:
        _tracker.lock.release()


def _check() -> ReplicaStatus:
    started = time.monotonic()
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            primary_lsn = lsn_parse(cursor.fetchone()[0])
    except DatabaseError as exc:
        logger.warning("replica check: the primary's WAL position is unknown: %s", exc)
        return _tracker.failed(UNKNOWN, exc, started=started)
    try:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute(_CHECK)
            in_recovery, replay, replay_age = cursor.fetchone()
    except DatabaseError as exc:
        return replica_failed(exc, started=started)
    return _tracker.observe(
        started=started,
        now=time.monotonic(),
        primary_lsn=primary_lsn,
        in_recovery=in_recovery,
        replay_lsn=lsn_parse(replay) if replay else None,
        replay_age=replay_age,
    )


def replica_failed(exc: BaseException, *, started: float | None = None) -> ReplicaStatus:
    """The replica failed a check or a read: no reads go there until a check succeeds."""
    logger.warning("replica unavailable, reading from the primary: %s", exc)
    connections[REPLICA].close()  # the next check connects afresh
    return _tracker.failed(DOWN, exc, started=time.monotonic() if started is None else started)


def replica_report() -> dict:
    """The replica in `/readyz`: `degraded` when it gets no reads. The primary still serves
    every request, so this never makes the service unready."""
    status = replica_status()
    report = {
        "status": "ok" if status.state == OK else "degraded",
        "state": status.state,
        "lag_seconds": None if status.lag_seconds is None else round(status.lag_seconds, 3),
        "lag_bytes": status.lag_bytes,
        "replay_lsn": None if status.replay_lsn is None else lsn_format(status.replay_lsn),
    }
    if status.error:
        report["error"] = status.error
    return report


# --- What each user last wrote ------------------------------------------------------------------

_breaker = RedisBreaker("replica read-your-writes")
_local_lock = threading.Lock()
# KEYS[1]: the user's key; ARGV: the LSN as 16 hex digits (so that strings order as LSNs),
# the window in milliseconds. Keeps the highest LSN; every write starts the window again.
_REMEMBER = """
local known = redis.call('GET', KEYS[1])
if not known or known < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
"""
_remember_script = None


def _memory_key(user_id: int) -> str:
    return f"replica:lsn:v1:{user_id}"


def client_lsn_remember(*, user_id: int, lsn: int) -> None:
    """Remember `lsn` for the user's reads of the next REPLICA_READ_YOUR_WRITES_SECONDS,
    unless a higher one is remembered. Without Redis, in this process only."""
    global _remember_script
    window = settings.REPLICA_READ_YOUR_WRITES_SECONDS
    if not settings.REDIS_URL:
        with _local_lock:
            known = cache.get(_memory_key(user_id))
            cache.set(_memory_key(user_id), max(lsn, known or 0), timeout=window)
        return
    client = _breaker.client()
    if client is None:
        return
    try:
        if _remember_script is None:
            _remember_script = client.register_script(_REMEMBER)
        _remember_script(
            keys=[cache.make_key(_memory_key(user_id))],
            args=[f"{lsn:016X}", int(window * 1000)],
            client=client,
        )
    except RedisError as exc:
        _breaker.trip(exc)


def client_lsn(*, user_id: int) -> int | None:
    """The highest LSN the user's writes returned within the window: 0 for none, None when
    it cannot be known (Redis unavailable)."""
    if not settings.REDIS_URL:
        return cache.get(_memory_key(user_id)) or 0
    client = _breaker.client()
    if client is None:
        return None
    try:
        known = client.get(cache.make_key(_memory_key(user_id)))
    except RedisError as exc:
        _breaker.trip(exc)
        return None
    return int(known, 16) if known else 0


class CommitLsnMiddleware:
    """After a request that may have written (a method other than GET, HEAD, OPTIONS or
    TRACE, answered 2xx or 3xx), add `X-Commit-LSN` and remember it for the user. Installed
    with DATABASE_REPLICA_URL only: without a replica, writes cost nothing more."""

    def __init__(self, get_response):
        if not configured():
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.method in ("GET", "HEAD", "OPTIONS", "TRACE")
            or not 200 <= response.status_code < 400
            or connections[DEFAULT_DB_ALIAS].in_atomic_block
        ):
            return response
        try:
            lsn = commit_lsn()
        except DatabaseError as exc:
            logger.warning("no %s: %s", COMMIT_LSN_HEADER, exc)
            return response
        response[COMMIT_LSN_HEADER] = lsn_format(lsn)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            client_lsn_remember(user_id=user.pk, lsn=lsn)
        return response


# --- Where a read goes ----------------------------------------------------------------------------

# Why a read went to the primary, besides the replica's own state: the user's or the request's
# LSN is not replayed there yet, the user's LSN cannot be known (Redis is down), the replica
# failed the read itself.
BEHIND_CLIENT, CLIENT_UNKNOWN, REPLICA_FAILED = "behind_client", "client_unknown", "replica_failed"


@dataclass(frozen=True)
class ReadRoute:
    alias: str  # REPLICA or DEFAULT_DB_ALIAS
    reason: str  # OK on the replica; on the primary, why not the replica

    @property
    def database(self) -> str:
        """What X-Read-From says: replica or primary."""
        return "replica" if self.alias == REPLICA else "primary"


_route: ContextVar[ReadRoute | None] = ContextVar("replica_read_route", default=None)


def read_route_choose(*, status: ReplicaStatus, min_lsn: int | None) -> ReadRoute:
    """The replica if it is healthy and has replayed up to `min_lsn` (None: unknown)."""
    if status.state != OK:
        return ReadRoute(DEFAULT_DB_ALIAS, status.state)
    if min_lsn is None:
        return ReadRoute(DEFAULT_DB_ALIAS, CLIENT_UNKNOWN)
    if min_lsn > status.replay_lsn:
        return ReadRoute(DEFAULT_DB_ALIAS, BEHIND_CLIENT)
    return ReadRoute(REPLICA, OK)


def read_route(*, user_id: int | None, min_lsn_header: str | None) -> ReadRoute | None:
    """Where a read request goes: None without a replica (and nothing is looked up). The
    request's `X-Min-LSN` and what the user wrote in the window both count. ValueError for
    a malformed X-Min-LSN, with or without a replica: the header means the same everywhere."""
    min_lsn = lsn_parse(min_lsn_header.strip()) if min_lsn_header is not None else 0
    if not configured():
        return None
    status = replica_status()
    if status.state == OK and user_id is not None:
        remembered = client_lsn(user_id=user_id)
        min_lsn = None if remembered is None else max(min_lsn, remembered)
    return read_route_choose(status=status, min_lsn=min_lsn)


def read_route_enter(route: ReadRoute) -> Token:
    return _route.set(route)


def read_route_leave(token: Token) -> None:
    _route.reset(token)


_reads: dict[tuple[str, str], Counter] = {}  # label children: labels() locks and validates


def read_counted(route: ReadRoute) -> None:
    key = (route.database, route.reason)
    if key not in _reads:
        _reads[key] = READS.labels(*key)
    _reads[key].inc()


def read_alias() -> str | None:
    """Where a read should go now: the replica inside a read request routed there, outside
    any transaction on the primary (its reads must see its own writes and locks); else None,
    which means the primary."""
    route = _route.get()
    if route is None or route.alias != REPLICA or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return None
    return REPLICA


def routed_stream(content: Iterable[bytes], route: ReadRoute) -> Iterator[bytes]:
    """A streamed body's chunks, each read under `route`: a streamed response's queries
    run after the view has returned, when its route would be gone."""
    chunks = iter(content)
    while True:
        token = _route.set(route)
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        finally:
            _route.reset(token)
        yield chunk


def metrics_scrape() -> None:
    """Check the replica (if the last check is stale) so that a scrape reports fresh gauges."""
    replica_status()
    READS.labels("replica", OK)
    for reason in (BEHIND_CLIENT, CLIENT_UNKNOWN, REPLICA_FAILED, LAGGING, DOWN, NOT_STANDBY):
        READS.labels("primary", reason)
