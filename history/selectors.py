from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import QuerySet

from history.models import OrderEventType, OrderLedgerEntry


def outbox_backlog() -> dict:
    """Unpublished outbox rows: how many, how many dead-lettered, and the age of the
    oldest deliverable one (the relay's lag)."""
    from django.db.models import Count, Min, Q
    from django.utils import timezone

    from history.models import OutboxEvent

    stats = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(
        pending=Count("id", filter=Q(dead_lettered_at__isnull=True)),
        dead_lettered=Count("id", filter=Q(dead_lettered_at__isnull=False)),
        oldest=Min("created_at", filter=Q(dead_lettered_at__isnull=True)),
    )
    oldest = stats.pop("oldest")
    stats["seconds_behind"] = round((timezone.now() - oldest).total_seconds(), 3) if oldest else 0.0
    return stats


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
        elif entry.event_type == OrderEventType.FULFILLED:
            state.status = "fulfilled"
    return state


def order_as_of(*, order_id: int, at: datetime) -> ReplayedOrder | None:
    """The order as it stood at `at`, rebuilt from the ledger; None if it did not exist."""
    entries = order_timeline(order_id=order_id).filter(occurred_at__lte=at)
    state = order_replay(entries.iterator(), order_id=order_id)
    return state if state.version else None


@dataclass(frozen=True)
class Drift:
    order_id: int
    where: str  # "ledger", "state" or "snapshot"
    detail: str


def ledger_drift(*, chunk_size: int = 1000, check_snapshots: bool = True) -> Iterator[Drift]:
    """Replay every order's ledger and yield each way in which the ledger itself, the
    current state or the snapshot disagrees with the replay."""
    from history.models import OrderSnapshot
    from orders.models import Order, OrderLine

    order_ids = list(Order.objects.order_by("id").values_list("id", flat=True))
    for start in range(0, len(order_ids), chunk_size):
        chunk = order_ids[start : start + chunk_size]
        entries: dict[int, list[OrderLedgerEntry]] = defaultdict(list)
        for entry in OrderLedgerEntry.objects.filter(order_id__in=chunk).order_by(
            "order_id", "version", "id"
        ):
            entries[entry.order_id].append(entry)
        lines: dict[int, dict[str, int]] = defaultdict(dict)
        for order_id, sku, quantity in OrderLine.objects.filter(order_id__in=chunk).values_list(
            "order_id", "product__sku", "quantity"
        ):
            lines[order_id][sku] = quantity
        orders = {
            o[0]: o
            for o in Order.objects.filter(pk__in=chunk).values_list("id", "version", "status")
        }
        snapshots = (
            {s.order_id: s for s in OrderSnapshot.objects.filter(order_id__in=chunk)}
            if check_snapshots
            else {}
        )
        for order_id in chunk:
            replayed = order_replay(entries[order_id], order_id=order_id)
            yield from _order_drift(
                replayed,
                lines[order_id],
                orders[order_id],
                snapshots.get(order_id),
                check_snapshots,
            )


def _order_drift(replayed, lines, order_row, snapshot, check_snapshots) -> Iterator[Drift]:
    order_id, version, status = order_row
    for problem in replayed.problems:
        yield Drift(order_id, "ledger", problem)
    if replayed.quantities != lines:
        yield Drift(order_id, "state", f"lines are {lines}, the ledger says {replayed.quantities}")
    if replayed.version != version:
        yield Drift(order_id, "state", f"version is {version}, the ledger says {replayed.version}")
    if replayed.status != status:
        yield Drift(order_id, "state", f"status is {status}, the ledger says {replayed.status}")
    if not check_snapshots:
        return
    if snapshot is None:
        yield Drift(order_id, "snapshot", "no snapshot")
        return
    if snapshot.lines != replayed.quantities:
        yield Drift(
            order_id,
            "snapshot",
            f"lines are {snapshot.lines}, the ledger says {replayed.quantities}",
        )
    if snapshot.total_quantity != sum(replayed.quantities.values()):
        yield Drift(order_id, "snapshot", f"total is {snapshot.total_quantity}")
    if snapshot.last_version != replayed.version:
        yield Drift(
            order_id,
            "snapshot",
            f"version is {snapshot.last_version}, the ledger says {replayed.version}",
        )
    if snapshot.status != replayed.status:
        yield Drift(order_id, "snapshot", f"status is {snapshot.status}")
