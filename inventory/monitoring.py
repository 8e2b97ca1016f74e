"""What inventory reports to `/metrics` (registered in `inventory.apps`): how many stock
levels are low, into `ordertrack_stock_low` (history.metrics, beside the other gauges)."""

import logging

from django.db import DatabaseError

from history import metrics
from inventory.models import StockLevel

logger = logging.getLogger(__name__)


def metrics_scrape() -> None:
    """Count the low stock levels now (the partial index stock_low_idx holds only those).
    With the database down the scrape still answers, with the gauge's last value."""
    try:
        metrics.stock_low_observed(StockLevel.objects.filter(is_low=True).count())
    except DatabaseError as exc:
        logger.warning("metrics: could not count the low stock levels: %s", exc)
