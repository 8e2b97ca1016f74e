"""Rate limits (DRF throttling): per role, and per token.

Every API request counts against one bucket, chosen here (scope, rate setting, keyed by):
- a CSV export (`?format=csv`, any role; auditors are who use them): `csv_export`,
  THROTTLE_CSV_EXPORT, per token;
- an integrator: `integrator`, THROTTLE_INTEGRATOR, per token;
- staff (order_staff, superusers): `staff`, THROTTLE_STAFF, per token;
- an auditor: `auditor`, THROTTLE_AUDITOR, per token;
- anonymous: `anon`, THROTTLE_ANON, per client address (a user with no role: per token).

"Per token" is the API token (request.auth) of a token request, the user for a session. A
user with several roles gets the most generous rate among them. A rate is `N/second`,
`N/minute`, `N/hour` or `N/day`, or `off`.

Counts are fixed windows (one counter per bucket and window, `incr` in one round trip) in
Django's default cache: Redis when REDIS_URL is set, shared by every process; local memory
in the embedded default (per process). With the token cache on, a token request is counted
in the token lookup's own round trip (`count_ahead`), in the bucket that token's previous
request in this process counted in; the throttle takes that count when the bucket is the
same (it is, unless the token's role, the format or the window changed since) and counts
again otherwise. One Redis round trip a request instead of two; a request refused for its
role (403) after its token was seen then counts too. If the cache cannot be reached,
requests are let through. A refused request is 429 problem details with `Retry-After` (the
seconds left in the window). A request whose token is refused counts in a bucket of its own
per client address, at the anonymous rate (`failed_authentication_count`)."""

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import RedisError
from rest_framework.exceptions import Throttled
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from config.redis_breaker import RedisBreaker
from config.roles import Role, user_roles
from config.tokens import AuthenticatedToken

_clock = time.time
PERIODS = {"s": 1, "m": 60, "h": 60 * 60, "d": 24 * 60 * 60}
ROLE_SCOPES = {Role.INTEGRATOR: "integrator", Role.STAFF: "staff", Role.AUDITOR: "auditor"}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """'6000/minute' -> (6000, 60); 'off', '' or None -> None (no limit)."""
    if not rate or rate.strip().lower() in ("off", "none"):
        return None
    count, _, period = rate.partition("/")
    seconds = PERIODS.get(period.strip()[:1].lower())
    if seconds is None or not count.strip().isdigit():
        raise ValueError(f"A rate is N/second, N/minute, N/hour or N/day, or off; not {rate!r}.")
    return int(count), seconds


def rates_check() -> None:
    for scope, rate in api_settings.DEFAULT_THROTTLE_RATES.items():
        try:
            parse_rate(rate)
        except ValueError as exc:
            raise ImproperlyConfigured(f"Rate limit {scope!r}: {exc}") from exc


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or with NUM_PROXIES trusted proxies in front, the
    address the outermost of them saw in X-Forwarded-For. django-axes uses it too."""
    return BaseThrottle().get_ident(request)


_breaker = RedisBreaker("rate limit counter")


def _count_queue(pipe, full_key: str, seconds: int) -> None:
    """The two plain commands that count a request (django-redis' incr runs a Lua script);
    the count is the last result."""
    pipe.set(full_key, 0, ex=seconds + 1, nx=True)
    pipe.incr(full_key)


def _hit(key: str, seconds: int) -> int | None:
    """Count one request in the window's counter; None if the cache is unreachable. With
    Redis, one round trip."""
    if settings.REDIS_URL:
        client = _breaker.client()
        if client is None:
            return None
        full_key = cache.make_key(key)
        try:
            pipe = client.pipeline(transaction=False)
            _count_queue(pipe, full_key, seconds)
            return pipe.execute()[1]
        except RedisError as exc:
            _breaker.trip(exc)
            return None
    try:
        return cache.incr(key)
    except ValueError:  # the window's first request
        if cache.add(key, 1, timeout=seconds + 1):
            return 1
        try:
            return cache.incr(key)
        except ValueError:
            return None


class CountAhead:
    """A token request counted ahead, in its token lookup's Redis round trip: `queue` adds
    the commands to that pipeline, `count` is then set from its last result."""

    def __init__(self, fingerprint: bytes, key: str | None, seconds: int = 0):
        self.fingerprint, self.key, self.seconds = fingerprint, key, seconds
        self.count: int | None = None

    def queue(self, pipe) -> int:
        if self.key is None:
            return 0
        _count_queue(pipe, self.key, self.seconds)
        return 2

    def received(self, results: list) -> None:
        if results:
            self.count = results[-1]


# Each token's bucket, as its last request in this process counted in it. Keyed by a digest
# of the whole token, so that only a request holding the token is counted ahead.
_buckets: dict[bytes, tuple[str, str, int]] = {}
_BUCKETS_MAX = 10_000


def count_ahead(token_key: str) -> CountAhead:
    fingerprint = hashlib.blake2b(token_key.encode(), digest_size=16).digest()
    bucket = _buckets.get(fingerprint) if settings.REDIS_URL else None
    if bucket is None:
        return CountAhead(fingerprint, None)
    scope, ident, seconds = bucket
    key = cache.make_key(f"throttle:{scope}:{ident}:{seconds}:{int(_clock() // seconds)}")
    return CountAhead(fingerprint, key, seconds)


class RoleRateThrottle(BaseThrottle):
    def __init__(self):
        self._wait: float | None = None

    def scope_and_ident(self, request) -> tuple[str, str]:
        user = request.user
        if not user or not user.is_authenticated:
            return "anon", f"ip:{client_ip(request)}"
        auth = request.auth
        ident = f"token:{auth.id}" if isinstance(auth, AuthenticatedToken) else f"user:{user.pk}"
        if getattr(getattr(request, "accepted_renderer", None), "format", None) == "csv":
            return "csv_export", ident
        rates = api_settings.DEFAULT_THROTTLE_RATES
        scopes = ["staff"] if user.is_superuser else []
        scopes += [ROLE_SCOPES[role] for role in user_roles(user) if role in ROLE_SCOPES]
        if not scopes:
            return "anon", ident
        return max(scopes, key=lambda scope: _per_second(rates.get(scope))), ident

    def allow_request(self, request, view) -> bool:
        scope, ident = self.scope_and_ident(request)
        self._wait = _count(scope, ident, getattr(request, "count_ahead", None))
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


def _count(scope: str, ident: str, ahead: CountAhead | None = None) -> float | None:
    """Count one request in the bucket, unless it was counted ahead in it; the seconds to
    wait if it is over its rate."""
    rate = parse_rate(api_settings.DEFAULT_THROTTLE_RATES.get(scope))
    if rate is None:
        return None
    limit, seconds = rate
    now = _clock()
    window = int(now // seconds)
    key = f"throttle:{scope}:{ident}:{seconds}:{window}"
    if ahead is not None and ahead.count is not None and ahead.key == cache.make_key(key):
        count = ahead.count
    else:
        count = _hit(key, seconds)
    if ahead is not None:
        if len(_buckets) >= _BUCKETS_MAX:
            _buckets.clear()
        _buckets[ahead.fingerprint] = (scope, ident, seconds)
    if count is None or count <= limit:
        return None
    return (window + 1) * seconds - now


def failed_authentication_count(request) -> None:
    """A refused credential counts at the anonymous rate of its address, in a bucket of its
    own: past it, 429 instead of 401. Guessing tokens, or flooding with well-formed bogus
    ones (each a database lookup), is then bounded like any anonymous traffic, and the
    address's valid requests are not held back."""
    wait = _count("anon", f"failed-auth:ip:{client_ip(request)}")
    if wait is not None:
        raise Throttled(wait=wait)


def _per_second(rate: str | None) -> float:
    parsed = parse_rate(rate)
    return float("inf") if parsed is None else parsed[0] / parsed[1]
