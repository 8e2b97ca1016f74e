from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import QuerySet

from history.models import OrderEventType, OrderLedgerEntry


def ledger_entries() -> QuerySet[OrderLedgerEntry]:
    return OrderLedgerEntry.objects.all()


def order_timeline(*, order_id: int) -> QuerySet[OrderLedgerEntry]:
    """The order's ledger, oldest first (version order, then line order)."""
    return OrderLedgerEntry.objects.filter(order_id=order_id).order_by("version", "id")


@dataclass
class ReplayedOrder:
    order_id: int
    version: int = 0
    status: str = "open"
    quantities: dict[str, int] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    problems: list[str] = field(default_factory=list)


def order_replay(entries: Iterable[OrderLedgerEntry], *, order_id: int) -> ReplayedOrder:
    """Fold ledger rows (in version order) into the order's state. Records any row whose
    `quantity_before` does not continue from the previous row, or a version gap."""
    state = ReplayedOrder(order_id=order_id)
    for entry in entries:
        if entry.version not in (state.version, state.version + 1):
            state.problems.append(f"version jumps from {state.version} to {entry.version}")
        previous = state.quantities.get(entry.sku, 0)
        if entry.quantity_before != previous:
            state.problems.append(
                f"v{entry.version} {entry.sku}: before={entry.quantity_before}, "
                f"but the ledger had {previous}"
            )
        state.quantities[entry.sku] = entry.quantity_after
        state.version = entry.version
        state.created_at = state.created_at or entry.occurred_at
        state.updated_at = entry.occurred_at
        if entry.event_type == OrderEventType.CANCELLED:
            state.status = "cancelled"
    return state


def order_as_of(*, order_id: int, at: datetime) -> ReplayedOrder | None:
    """The order as it stood at `at`, rebuilt from the ledger; None if it did not exist."""
    entries = order_timeline(order_id=order_id).filter(occurred_at__lte=at)
    state = order_replay(entries.iterator(), order_id=order_id)
    return state if state.version else None
