"""What a recorded change is made of, and the event payloads, built in one place so that
every producer emits the same shape.

An `Event` is one command on one aggregate: it becomes one outbox row, plus one order
ledger row per `LineChange` and one stock ledger row per `StockChange`, all sharing its
`event_id`. `history.recorder.changes_record` writes them.

A payload field is only ever added, never renamed or removed; a breaking change gets a new
type. The value classes are plain slotted dataclasses, not frozen ones: a bulk request builds
thousands, and a frozen one costs three times as much to build; nothing changes them."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from history.audit import Audit


@dataclass(slots=True)
class LineChange:
    """One order line's quantity, before and after a command: one order ledger row."""

    product_id: int
    sku: str
    before: int
    after: int

    @property
    def delta(self) -> int:
        return self.after - self.before


@dataclass(slots=True)
class StockChange:
    """One stock level's net move within a command and its quantities after it: one stock
    ledger row. `version` is the level's version after the move."""

    product_id: int
    sku: str
    location_id: int
    location_code: str
    movement: str
    version: int
    on_hand: int
    reserved: int
    in_transit: int
    backorder: int
    on_hand_after: int
    reserved_after: int
    in_transit_after: int
    backorder_after: int

    def as_event(self) -> dict:
        return {
            "location": self.location_code,
            "movement": self.movement,
            "delta_on_hand": self.on_hand,
            "delta_reserved": self.reserved,
            "delta_in_transit": self.in_transit,
            "delta_backorder": self.backorder,
            "on_hand": self.on_hand_after,
            "reserved": self.reserved_after,
            "available": self.on_hand_after - self.reserved_after,
            "in_transit": self.in_transit_after,
            "backorder": self.backorder_after,
        }


@dataclass(slots=True)
class Event:
    """One command on one aggregate, left at `version`. Order events carry `lines`, stock
    events `stock` (with what the moves were for in `reference_type`/`reference_id`); an
    event may carry neither (`stock.low`)."""

    aggregate_type: str
    aggregate_id: str
    version: int
    event_type: str
    payload: dict
    lines: Sequence[LineChange] = ()
    stock: Sequence[StockChange] = ()
    reference_type: str = ""
    reference_id: str = ""
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


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
        "reason_code": audit.recorded_reason_code,
        "correlation_id": audit.correlation_id,
        "occurred_at": occurred_at.isoformat(),
    }


def stock_event_data(
    *,
    sku: str,
    aggregate_version: int,
    changes: Sequence[StockChange],
    reference_type: str,
    reference_id: str,
    audit: Audit,
    occurred_at: datetime,
    extra: dict | None = None,
) -> dict:
    return {
        "sku": sku,
        "aggregate_version": aggregate_version,
        "movements": [change.as_event() for change in changes],
        "reference": {"type": reference_type, "id": reference_id} if reference_type else None,
        "actor": audit.actor,
        "source": str(audit.source),
        "reason": audit.reason,
        "reason_code": audit.recorded_reason_code,
        "correlation_id": audit.correlation_id,
        "occurred_at": occurred_at.isoformat(),
        **(extra or {}),
    }
