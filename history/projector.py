"""The projector folds the ledgers into the snapshot tables (the read side).

Each projection keeps its own checkpoint and is updated in the same transaction as it, so
a run applies every ledger row exactly once. Ledger ids are not a safe checkpoint on
PostgreSQL: transactions commit out of id order, so a projector that follows the highest id
it has seen skips rows that commit late. Instead each ledger row records its writer's
transaction id, and the checkpoint is the database snapshot of the previous run: a run
applies the rows whose transactions are visible in its own snapshot but were not in the
previous one. A late commit is simply picked up by the next run.

The folds are commutative and guarded per line by version, so applying an order's rows in
any order gives the same snapshot.
"""

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import BooleanField, Min, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from config.tracing import traced
from history import metrics
from history.models import (
    DailyChangeCounts,
    LedgerKind,
    OrderEventType,
    OrderLedgerEntry,
    OrderSnapshot,
    ProjectionCheckpoint,
    SkuDailyAdjustments,
    SkuDemand,
    SkuStockTotals,
    StockLedgerEntry,
)

ADJUSTED = OrderEventType.QUANTITY_ADJUSTED


def _fold_order_snapshots(rows: list[OrderLedgerEntry]) -> None:
    by_order: dict[int, list[OrderLedgerEntry]] = defaultdict(list)
    for row in rows:
        by_order[row.order_id].append(row)
    snapshots = {s.order_id: s for s in OrderSnapshot.objects.filter(order_id__in=by_order)}
    missing = [order_id for order_id in by_order if order_id not in snapshots]
    customers = dict(
        OrderLedgerEntry.objects.filter(order_id__in=missing, version=1)
        .values_list("order_id", "order__customer_id")
        .distinct()
    )
    for order_id in missing:
        snapshots[order_id] = OrderSnapshot(
            order_id=order_id, customer_id=customers.get(order_id), lines={}, line_versions={}
        )
    for order_id, entries in by_order.items():
        snapshot = snapshots[order_id]
        for entry in sorted(entries, key=lambda e: (e.version, e.id)):
            _fold_into_snapshot(snapshot, entry)
        snapshot.total_quantity = sum(snapshot.lines.values())
    OrderSnapshot.objects.bulk_create(
        snapshots.values(),
        update_conflicts=True,
        unique_fields=["order"],
        update_fields=[
            "status",
            "total_quantity",
            "lines",
            "line_versions",
            "total_adjustments",
            "last_adjustment_delta",
            "last_adjustment_version",
            "last_event_id",
            "last_version",
            "last_updated",
        ],
    )


def _fold_into_snapshot(snapshot: OrderSnapshot, entry: OrderLedgerEntry) -> None:
    if entry.version > snapshot.line_versions.get(entry.sku, 0):
        snapshot.lines[entry.sku] = entry.quantity_after
        snapshot.line_versions[entry.sku] = entry.version
    if entry.event_type == ADJUSTED:
        snapshot.total_adjustments += 1
        if entry.version > (snapshot.last_adjustment_version or 0):
            snapshot.last_adjustment_version = entry.version
            snapshot.last_adjustment_delta = entry.delta
        elif entry.version == snapshot.last_adjustment_version:
            snapshot.last_adjustment_delta += entry.delta
    if entry.version >= snapshot.last_version:
        snapshot.last_version = entry.version
        snapshot.last_event_id = entry.event_id
        snapshot.last_updated = entry.occurred_at
        if entry.event_type == OrderEventType.CANCELLED:
            snapshot.status = "cancelled"
        elif entry.event_type == OrderEventType.FULFILLED:
            snapshot.status = "fulfilled"


def _fold_sku_demand(rows: list[OrderLedgerEntry]) -> None:
    totals: dict[str, SkuDemand] = {
        d.sku: d for d in SkuDemand.objects.filter(sku__in={row.sku for row in rows})
    }
    for row in rows:
        demand = totals.setdefault(row.sku, SkuDemand(sku=row.sku))
        demand.open_quantity += row.delta
        if row.event_type == OrderEventType.FULFILLED:
            demand.open_quantity -= row.quantity_after
        demand.adjustment_count += row.event_type == ADJUSTED
        if demand.last_updated is None or row.occurred_at > demand.last_updated:
            demand.last_updated = row.occurred_at
    SkuDemand.objects.bulk_create(
        totals.values(),
        update_conflicts=True,
        unique_fields=["sku"],
        update_fields=["open_quantity", "adjustment_count", "last_updated"],
    )


def _fold_sku_daily(rows: list[OrderLedgerEntry]) -> None:
    keys = {(row.sku, row.occurred_at.date()) for row in rows}
    days: dict[tuple[str, object], SkuDailyAdjustments] = {
        (d.sku, d.day): d
        for d in SkuDailyAdjustments.objects.filter(
            sku__in={sku for sku, _ in keys}, day__in={day for _, day in keys}
        )
    }
    for row in rows:
        key = (row.sku, row.occurred_at.date())
        daily = days.setdefault(key, SkuDailyAdjustments(sku=key[0], day=key[1]))
        daily.adjustment_count += row.event_type == ADJUSTED
        daily.net_delta += row.delta
    SkuDailyAdjustments.objects.bulk_create(
        [days[key] for key in keys],
        update_conflicts=True,
        unique_fields=["sku", "day"],
        update_fields=["adjustment_count", "net_delta"],
    )


def _fold_stock_totals(rows: list[StockLedgerEntry]) -> None:
    totals = {t.sku: t for t in SkuStockTotals.objects.filter(sku__in={row.sku for row in rows})}
    for row in rows:
        total = totals.setdefault(row.sku, SkuStockTotals(sku=row.sku))
        total.on_hand += row.delta_on_hand
        total.reserved += row.delta_reserved
        total.in_transit += row.delta_in_transit
        total.backorder += row.delta_backorder
        total.movements += 1
        if total.last_updated is None or row.occurred_at > total.last_updated:
            total.last_updated = row.occurred_at
    SkuStockTotals.objects.bulk_create(
        totals.values(),
        update_conflicts=True,
        unique_fields=["sku"],
        update_fields=[
            "on_hand",
            "reserved",
            "in_transit",
            "backorder",
            "movements",
            "last_updated",
        ],
    )


def _fold_daily_changes(rows: list, *, ledger: LedgerKind) -> None:
    """Count one ledger's rows per (day in settings.TIME_ZONE, source)."""
    tz = timezone.get_default_timezone()
    counts = Counter((timezone.localtime(row.occurred_at, tz).date(), row.source) for row in rows)
    days: dict[tuple, DailyChangeCounts] = {
        (d.day, d.source): d
        for d in DailyChangeCounts.objects.filter(ledger=ledger, day__in={day for day, _ in counts})
    }
    for (day, source), rows_counted in counts.items():
        daily = days.setdefault(
            (day, source), DailyChangeCounts(day=day, ledger=ledger, source=source)
        )
        daily.rows += rows_counted
    DailyChangeCounts.objects.bulk_create(
        [days[key] for key in counts],
        update_conflicts=True,
        unique_fields=["day", "ledger", "source"],
        update_fields=["rows"],
    )


@dataclass(frozen=True)
class Projection:
    ledger: type[models.Model]
    fold: Callable[[list], None]
    table: type[models.Model]
    # The rows of `table` this projection folds, where projections share a table: what a
    # rebuild empties (all of it by default).
    owns: Q = field(default_factory=Q)


PROJECTIONS: dict[str, Projection] = {
    "order_snapshots": Projection(OrderLedgerEntry, _fold_order_snapshots, OrderSnapshot),
    "sku_demand": Projection(OrderLedgerEntry, _fold_sku_demand, SkuDemand),
    "sku_daily": Projection(OrderLedgerEntry, _fold_sku_daily, SkuDailyAdjustments),
    "stock_totals": Projection(StockLedgerEntry, _fold_stock_totals, SkuStockTotals),
    # One table, one projection (and checkpoint) per ledger.
    "daily_changes_order": Projection(
        OrderLedgerEntry,
        partial(_fold_daily_changes, ledger=LedgerKind.ORDER),
        DailyChangeCounts,
        Q(ledger=LedgerKind.ORDER),
    ),
    "daily_changes_stock": Projection(
        StockLedgerEntry,
        partial(_fold_daily_changes, ledger=LedgerKind.STOCK),
        DailyChangeCounts,
        Q(ledger=LedgerKind.STOCK),
    ),
}


def committed_between_sql(previous: str, current: str | None) -> tuple[str, list]:
    """Rows committed after the `previous` snapshot and, if given, by the `current` one.
    Only transactions at or above the previous xmax, or in its in-progress list, can have
    such rows, so the txid index narrows the scan."""
    _xmin, xmax, xip = previous.split(":")
    in_progress = [int(x) for x in xip.split(",") if x]
    sql = (
        "(txid >= %s OR txid = ANY(%s))"
        " AND NOT pg_visible_in_snapshot(txid::text::xid8, %s::pg_snapshot)"
    )
    params: list = [int(xmax), in_progress, previous]
    if current is not None:
        sql += " AND pg_visible_in_snapshot(txid::text::xid8, %s::pg_snapshot)"
        params.append(current)
    return sql, params


def _pending(projection: Projection, previous: str, current: str | None) -> models.QuerySet:
    where, params = committed_between_sql(previous, current)
    return projection.ledger.objects.filter(RawSQL(where, params, BooleanField()))


def _current_snapshot() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_snapshot()::text")
        return cursor.fetchone()[0]


def _apply_pending(
    checkpoint: ProjectionCheckpoint, projection: Projection, batch_size: int
) -> int:
    """Fold every row committed since the checkpoint, in chunks, and move the checkpoint.
    Runs inside the caller's transaction, which holds the checkpoint row lock."""
    applied = 0
    last_id = 0
    current = _current_snapshot()
    pending = _pending(projection, checkpoint.pg_snapshot, current)
    while True:
        rows = list(pending.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not rows:
            break
        projection.fold(rows)
        applied += len(rows)
        last_id = rows[-1].id
    checkpoint.pg_snapshot = current
    if applied:
        checkpoint.applied_rows += applied
        checkpoint.last_applied_at = timezone.now()
    checkpoint.save()
    return applied


def _checkpoint(name: str) -> ProjectionCheckpoint:
    ProjectionCheckpoint.objects.get_or_create(name=name)
    return ProjectionCheckpoint.objects.select_for_update().get(name=name)


def projection_run(*, name: str, batch_size: int | None = None) -> int:
    """Apply the ledger rows committed since the last run to one projection, in one
    transaction; returns how many rows were applied. Runs of the same projection serialize
    on the checkpoint row, so it is safe to run from several workers."""
    with transaction.atomic():
        checkpoint = _checkpoint(name)
        return _apply_pending(
            checkpoint, PROJECTIONS[name], batch_size or settings.PROJECTOR_BATCH_SIZE
        )


@traced
def projections_run(*, names: Iterable[str] | None = None) -> dict[str, int]:
    return {name: projection_run(name=name) for name in names or PROJECTIONS}


def projections_rebuild(*, names: Iterable[str] | None = None) -> dict[str, int]:
    """Empty the snapshot tables (each projection its own rows of them) and fold the whole
    ledger again, each projection in one transaction, so readers see either the old or the
    rebuilt table."""
    applied = {}
    for name in names or PROJECTIONS:
        projection = PROJECTIONS[name]
        with transaction.atomic():
            checkpoint = _checkpoint(name)
            projection.table.objects.filter(projection.owns).delete()
            checkpoint.pg_snapshot = ProjectionCheckpoint._meta.get_field("pg_snapshot").default
            checkpoint.applied_rows = 0
            applied[name] = _apply_pending(checkpoint, projection, settings.PROJECTOR_BATCH_SIZE)
    return applied


@dataclass(frozen=True)
class Lag:
    events_behind: int
    seconds_behind: float


def projection_lag(*, cap: int = 100_000) -> dict[str, Lag]:
    """How far each projection is behind the ledger (events counted up to `cap`)."""
    checkpoints = {c.name: c for c in ProjectionCheckpoint.objects.all()}
    now = timezone.now()
    lag = {}
    for name in PROJECTIONS:
        checkpoint = checkpoints.get(name) or ProjectionCheckpoint(name=name)
        pending = _pending(PROJECTIONS[name], checkpoint.pg_snapshot, None)
        behind = pending.order_by()[:cap].count()
        oldest = pending.aggregate(oldest=Min("occurred_at"))["oldest"] if behind else None
        lag[name] = Lag(
            events_behind=behind,
            seconds_behind=round((now - oldest).total_seconds(), 3) if oldest else 0.0,
        )
    metrics.projection_lag_observed(lag)
    return lag
