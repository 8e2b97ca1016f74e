"""Event payloads, built in one place so that every producer emits the same shape.

A field is only ever added, never renamed or removed; a breaking change gets a new type."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from history.audit import Audit


@dataclass(frozen=True, slots=True)
class LineChange:
    product_id: int
    sku: str
    before: int
    after: int

    @property
    def delta(self) -> int:
        return self.after - self.before


def order_event_data(
    *,
    order_id: int,
    version: int,
    status: str,
    reference: str,
    customer_id: int | None,
    changes: Sequence[LineChange],
    audit: Audit,
    occurred_at: datetime,
) -> dict:
    return {
        "order_id": order_id,
        "aggregate_version": version,
        "status": status,
        "reference": reference,
        "customer_id": customer_id,
        "changes": [
            {"sku": c.sku, "before": c.before, "after": c.after, "delta": c.delta} for c in changes
        ],
        "actor": audit.actor,
        "source": str(audit.source),
        "reason": audit.reason,
        "correlation_id": audit.correlation_id,
        "occurred_at": occurred_at.isoformat(),
    }


def stock_event_data(
    *,
    sku: str,
    aggregate_version: int,
    moves: Sequence[dict],
    reference_type: str,
    reference_id: str,
    audit: Audit,
    occurred_at: datetime,
    extra: dict | None = None,
) -> dict:
    return {
        "sku": sku,
        "aggregate_version": aggregate_version,
        "movements": list(moves),
        "reference": {"type": reference_type, "id": reference_id} if reference_type else None,
        "actor": audit.actor,
        "source": str(audit.source),
        "reason": audit.reason,
        "correlation_id": audit.correlation_id,
        "occurred_at": occurred_at.isoformat(),
        **(extra or {}),
    }
