"""Prometheus metrics: the domain metrics (all named `ordertrack_*`) and the `/metrics` view.

Request, response and latency metrics (`django_http_*`) come from django-prometheus's
middleware pair. The domain metrics are defined here, once, and updated through the small
functions below, which the services call:

- `ordertrack_adjustments_total{source, kind}`: ledger rows committed (kind = order|stock),
  counted when the recording transaction commits, so a rolled-back command counts nothing;
- `ordertrack_events_published_total{event_type}`: events the broker confirmed;
- `ordertrack_events_dead_lettered_total`: events given up after RELAY_MAX_ATTEMPTS;
- `ordertrack_relay_lag_seconds`: per published event, its confirm time minus created_at;
- `ordertrack_cache_requests_total{result}`: order cache reads, hit|miss|degraded;
- gauges computed when scraped (and whenever `projection_lag()` runs): projection lag in
  events and seconds per projection, and the outbox backlog.

Multiprocess mode: prometheus_client switches to it when PROMETHEUS_MULTIPROC_DIR is set
before it is imported (gunicorn with several workers, Celery workers); every process then
writes its samples to files in that directory, and the view aggregates them all. See
config/gunicorn.py and the README ("Metrics").
"""

import hmac
import logging
import os
import time

import prometheus_client
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

ADJUSTMENTS = Counter(
    "ordertrack_adjustments_total",
    "Ledger rows committed, by the door the change came through and the ledger.",
    ["source", "kind"],
)
EVENTS_PUBLISHED = Counter(
    "ordertrack_events_published_total",
    "Outbox events published and confirmed by the broker (a redelivery counts again).",
    ["event_type"],
)
EVENTS_DEAD_LETTERED = Counter(
    "ordertrack_events_dead_lettered_total",
    "Outbox events dead-lettered after the last failed attempt.",
)
RELAY_LAG = Histogram(
    "ordertrack_relay_lag_seconds",
    "Time from an outbox event's creation to the broker's confirm of its publication.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
CACHE_REQUESTS = Counter(
    "ordertrack_cache_requests_total",
    "Order cache reads by result: hit, miss or degraded (cache unavailable).",
    ["result"],
)

# Gauges are computed from the database by whichever process runs projection_lag() or
# serves the scrape, so with several processes the freshest value is the right one.
_FRESHEST = "livemostrecent"
PROJECTION_LAG_EVENTS = Gauge(
    "ordertrack_projection_lag_events",
    "Ledger rows committed but not yet folded into the projection (counted up to a cap).",
    ["projection"],
    multiprocess_mode=_FRESHEST,
)
PROJECTION_LAG_SECONDS = Gauge(
    "ordertrack_projection_lag_seconds",
    "Age of the oldest ledger row the projection has not folded yet.",
    ["projection"],
    multiprocess_mode=_FRESHEST,
)
OUTBOX_PENDING = Gauge(
    "ordertrack_outbox_pending",
    "Outbox events not yet published (dead-lettered ones excluded).",
    multiprocess_mode=_FRESHEST,
)
OUTBOX_DEAD_LETTERED = Gauge(
    "ordertrack_outbox_dead_lettered",
    "Outbox events dead-lettered and not published since.",
    multiprocess_mode=_FRESHEST,
)
OUTBOX_OLDEST_PENDING_SECONDS = Gauge(
    "ordertrack_outbox_oldest_pending_seconds",
    "Age of the oldest event waiting for the relay (0 when none).",
    multiprocess_mode=_FRESHEST,
)

# Label children, looked up once: `labels()` takes a lock and validates every call.
_adjustments: dict[tuple[str, str], object] = {}
_published: dict[str, object] = {}
_cache_results: dict[str, object] = {}


def adjustments_recorded(source: str, kind: str, rows: int) -> None:
    child = _adjustments.get((source, kind))
    if child is None:
        child = _adjustments[(source, kind)] = ADJUSTMENTS.labels(str(source), kind)
    child.inc(rows)


def events_confirmed(events, outcome: dict) -> None:
    """A relay wave came back: count the confirmed events (`outcome[pk] is None`) by type
    and observe each one's lag, confirm time minus created_at."""
    now = time.time()
    observe = RELAY_LAG.observe
    by_type: dict[str, int] = {}
    for event in events:
        if outcome[event.pk] is None:
            by_type[event.event_type] = by_type.get(event.event_type, 0) + 1
            observe(now - event.created_at.timestamp())
    for event_type, count in by_type.items():
        child = _published.get(event_type)
        if child is None:
            child = _published[event_type] = EVENTS_PUBLISHED.labels(event_type)
        child.inc(count)


def events_dead_lettered(count: int) -> None:
    if count:
        EVENTS_DEAD_LETTERED.inc(count)


def cache_request(result: str) -> None:
    child = _cache_results.get(result)
    if child is None:
        child = _cache_results[result] = CACHE_REQUESTS.labels(result)
    child.inc()


def projection_lag_observed(lag: dict) -> None:
    """Called by history.projector.projection_lag() with {projection: Lag}."""
    for name, value in lag.items():
        PROJECTION_LAG_EVENTS.labels(name).set(value.events_behind)
        PROJECTION_LAG_SECONDS.labels(name).set(value.seconds_behind)


_known_series_created = False


def _create_known_series() -> None:
    """Create every known label combination at 0, so each series exists (and rate() has a
    starting point) before its first increment. Once per process, on its first scrape."""
    global _known_series_created
    if _known_series_created:
        return
    from history.models import OrderEventType, Source, StockEventType
    from orders.cache import DEGRADED, HIT, MISS

    for source in Source:
        for kind in ("order", "stock"):
            ADJUSTMENTS.labels(source.value, kind)
    for event_type in (*OrderEventType, *StockEventType):
        EVENTS_PUBLISHED.labels(event_type.value)
    for result in (HIT, MISS, DEGRADED):
        CACHE_REQUESTS.labels(result)
    _known_series_created = True


def _refresh_gauges() -> None:
    """Compute the database-backed gauges now, so every scrape reports a fresh lag. With the
    database down the scrape still answers, with the gauges' last values."""
    from history.projector import projection_lag
    from history.selectors import outbox_backlog

    try:
        projection_lag()
        backlog = outbox_backlog()
    except DatabaseError as exc:
        logger.warning("metrics: could not compute the lag gauges: %s", exc)
        return
    OUTBOX_PENDING.set(backlog["pending"])
    OUTBOX_DEAD_LETTERED.set(backlog["dead_lettered"])
    OUTBOX_OLDEST_PENDING_SECONDS.set(backlog["seconds_behind"])


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def registry() -> CollectorRegistry:
    """What to expose: in multiprocess mode, a fresh registry that aggregates every
    process's files; otherwise this process's default registry."""
    if multiprocess_dir():
        aggregate = CollectorRegistry()
        MultiProcessCollector(aggregate)
        return aggregate
    return prometheus_client.REGISTRY


def _refused(request) -> HttpResponse | None:
    """None if the request may read the metrics. With METRICS_PUBLIC anyone may; otherwise
    only a request carrying `Authorization: Bearer <METRICS_TOKEN>` (401 without a bearer
    token, 403 with a wrong one or when no token is configured)."""
    if settings.METRICS_PUBLIC:
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        response = HttpResponse("Authentication required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    expected = settings.METRICS_TOKEN
    if not expected or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    return None


@require_safe
def metrics_view(request):
    """`GET /metrics`: every metric, in the Prometheus exposition format."""
    refused = _refused(request)
    if refused is not None:
        return refused
    _create_known_series()
    _refresh_gauges()
    # The text format, or OpenMetrics when the scraper asks for it, as prometheus_client's
    # own exporter does.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encode(registry()), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
