"""The `ordertrack_*` metrics of the write path, the relay, the projector and the order
cache, defined once here and updated through the small functions below:

- `ordertrack_adjustments_total{source, kind}`: ledger rows committed (kind = order|stock),
  counted when the recording transaction commits, so a rolled-back command counts nothing;
- `ordertrack_events_published_total{event_type}`: events the broker confirmed;
- `ordertrack_events_dead_lettered_total`: events given up after RELAY_MAX_ATTEMPTS;
- `ordertrack_relay_lag_seconds`: per published event, its confirm time minus created_at
  (the commit of the command that recorded it, to the broker's confirm);
- `ordertrack_relay_publish_seconds`: per relay wave, the broker's part of that: from the
  relay's first publish of the wave to the last publisher confirm;
- `ordertrack_cache_requests_total{result}`: order cache reads, hit|miss|degraded;
- gauges computed when scraped (and whenever `projection_lag()` runs): projection lag in
  events and seconds per projection, and the outbox backlog;
- `ordertrack_stock_low`: stock levels at or below their reorder point, computed when
  scraped by `inventory.monitoring` (history cannot read inventory's tables).

`/metrics` itself (the view, multiprocess mode) is `config.metrics`; `scrape` below is
registered with it in `history.apps`.
"""

import time

from prometheus_client import Counter, Gauge, Histogram

HIT, MISS, DEGRADED = "hit", "miss", "degraded"  # order cache reads

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
RELAY_PUBLISH = Histogram(
    "ordertrack_relay_publish_seconds",
    "Time from the relay's first publish of a wave of events to the broker's confirm of all.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
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
STOCK_LOW = Gauge(
    "ordertrack_stock_low",
    "Stock levels whose available units (on hand - reserved) are at or below the reorder point.",
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


def wave_published(seconds: float) -> None:
    """A relay wave was published and confirmed (or refused) in `seconds`."""
    RELAY_PUBLISH.observe(seconds)


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


def outbox_backlog_observed(backlog: dict) -> None:
    """Called with history.selectors.outbox_backlog()."""
    OUTBOX_PENDING.set(backlog["pending"])
    OUTBOX_DEAD_LETTERED.set(backlog["dead_lettered"])
    OUTBOX_OLDEST_PENDING_SECONDS.set(backlog["seconds_behind"])


def stock_low_observed(count: int) -> None:
    """Called with the number of low stock levels (inventory.monitoring, on every scrape)."""
    STOCK_LOW.set(count)
