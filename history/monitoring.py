"""What history reports to `/readyz` and `/metrics` (registered in `history.apps`): the
outbox backlog and the lag of each projection."""

import logging

from django.db import DatabaseError

from history import metrics
from history.metrics import ADJUSTMENTS, CACHE_REQUESTS, DEGRADED, EVENTS_PUBLISHED, HIT, MISS
from history.models import OrderEventType, Source, StockEventType
from history.projector import projection_lag
from history.selectors import outbox_backlog

logger = logging.getLogger(__name__)


def projections_report() -> dict:
    return {
        name: {"events_behind": lag.events_behind, "seconds_behind": lag.seconds_behind}
        for name, lag in projection_lag().items()
    }


def metrics_scrape() -> None:
    """Compute the database-backed gauges now, so every scrape reports a fresh lag. With the
    database down the scrape still answers, with the gauges' last values."""
    _known_series_create()
    try:
        projection_lag()
        metrics.outbox_backlog_observed(outbox_backlog())
    except DatabaseError as exc:
        logger.warning("metrics: could not compute the lag gauges: %s", exc)


_known_series_created = False


def _known_series_create() -> None:
    """Create every known label combination at 0, so each series exists (and rate() has a
    starting point) before its first increment. Once per process, on its first scrape."""
    global _known_series_created
    if _known_series_created:
        return
    for source in Source:
        for kind in ("order", "stock"):
            ADJUSTMENTS.labels(source.value, kind)
    for event_type in (*OrderEventType, *StockEventType):
        EVENTS_PUBLISHED.labels(event_type.value)
    for result in (HIT, MISS, DEGRADED):
        CACHE_REQUESTS.labels(result)
    _known_series_created = True
