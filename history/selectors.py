from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Case, CharField, Exists, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from config.errors import NotFound
from history.models import (
    OrderEventType,
    OrderLedgerEntry,
    OutboxEvent,
    SkuDailyAdjustments,
    SkuDemand,
)


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


class OutboxStatus(models.TextChoices):
    """Where an outbox row is in its delivery. Exactly one applies, in this order:
    published, dead-lettered, waiting (an earlier unpublished event of the same aggregate
    is dead-lettered or backing off, so the relay holds this one back), retrying (failed
    at least once, will be tried again), pending (next in line)."""

    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    WAITING = "waiting", "Waiting behind a stuck event"
    DEAD_LETTERED = "dead_lettered", "Dead-lettered"
    PUBLISHED = "published", "Published"


def _outbox_blocked_by_sibling(now: datetime) -> Exists:
    """An earlier unpublished event of the same aggregate is dead-lettered or backing off,
    the rows the relay waits behind. Served by the partial index on unpublished rows
    (aggregate_type, aggregate_id, id)."""
    return Exists(
        OutboxEvent.objects.filter(
            aggregate_type=OuterRef("aggregate_type"),
            aggregate_id=OuterRef("aggregate_id"),
            published_at__isnull=True,
            id__lt=OuterRef("id"),
        ).filter(Q(dead_lettered_at__isnull=False) | Q(next_attempt_at__gt=now))
    )


def outbox_status_q(status: str, *, now: datetime | None = None) -> Q:
    """The filter for one OutboxStatus, on indexed columns (not on the CASE annotation)."""
    now = now or timezone.now()
    unpublished = Q(published_at__isnull=True)
    live = unpublished & Q(dead_lettered_at__isnull=True)
    blocked = _outbox_blocked_by_sibling(now)
    return {
        OutboxStatus.PUBLISHED: Q(published_at__isnull=False),
        OutboxStatus.DEAD_LETTERED: unpublished & Q(dead_lettered_at__isnull=False),
        OutboxStatus.WAITING: live & Q(blocked),
        OutboxStatus.RETRYING: live & Q(attempts__gt=0) & ~Q(blocked),
        OutboxStatus.PENDING: live & Q(attempts=0) & ~Q(blocked),
    }[OutboxStatus(status)]


def outbox_with_status(
    *, status: str | None = None, queryset: QuerySet[OutboxEvent] | None = None
) -> QuerySet[OutboxEvent]:
    """Outbox rows annotated with `status` (an OutboxStatus value), optionally only those
    in one status. The sibling subquery runs only for unpublished, live rows."""
    now = timezone.now()
    queryset = OutboxEvent.objects.all() if queryset is None else queryset
    queryset = queryset.annotate(
        status=Case(
            When(published_at__isnull=False, then=Value(OutboxStatus.PUBLISHED.value)),
            When(dead_lettered_at__isnull=False, then=Value(OutboxStatus.DEAD_LETTERED.value)),
            When(_outbox_blocked_by_sibling(now), then=Value(OutboxStatus.WAITING.value)),
            When(attempts__gt=0, then=Value(OutboxStatus.RETRYING.value)),
            default=Value(OutboxStatus.PENDING.value),
            output_field=CharField(),
        )
    )
    if status:
        queryset = queryset.filter(outbox_status_q(status, now=now))
    return queryset


def sku_demand_list() -> QuerySet[SkuDemand]:
    return SkuDemand.objects.all()


@dataclass(frozen=True)
class SkuDemandDetail:
    sku: str
    open_quantity: int
    adjustment_count: int
    last_updated: datetime | None
    daily: list[SkuDailyAdjustments]


def sku_demand_get(*, sku: str, days: int = 30) -> SkuDemandDetail:
    """A sku's open demand and its daily adjustments over the last `days` days (UTC days,
    today included), from the snapshot tables. A product nobody has ordered yet has zero
    demand; a sku that is not a product is NotFound."""
    from inventory.models import Product

    demand = SkuDemand.objects.filter(sku=sku).first()
    if demand is None:
        if not Product.objects.filter(sku=sku).exists():
            raise NotFound(f"Product {sku} does not exist.")
        demand = SkuDemand(sku=sku)
    since = timezone.now().date() - timedelta(days=days - 1)
    daily = list(SkuDailyAdjustments.objects.filter(sku=sku, day__gte=since).order_by("day"))
    return SkuDemandDetail(
        sku=demand.sku,
        open_quantity=demand.open_quantity,
        adjustment_count=demand.adjustment_count,
        last_updated=demand.last_updated,
        daily=daily,
    )


# --- Stock ledger replay ----------------------------------------------------------------------

STOCK_QUANTITIES = ("on_hand", "reserved", "in_transit", "backorder")


@dataclass
class ReplayedStock:
    product_id: int
    location_id: int
    sku: str = ""
    location_code: str = ""
    on_hand: int = 0
    reserved: int = 0
    in_transit: int = 0
    backorder: int = 0
    version: int = 0
    movements: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def place(self) -> str:
        return f"{self.sku}@{self.location_code}"


def stock_replay(rows: Iterable) -> dict[tuple[int, int], ReplayedStock]:
    """Fold stock ledger rows (in id order) per (product id, location id). Each row must
    continue from the previous row of its place: its before (after - delta) is the previous
    after, and its version the previous one plus one. Every break is recorded in the
    place's `problems`; the fold goes on from the row's own after values."""
    places: dict[tuple[int, int], ReplayedStock] = {}
    for entry in rows:
        key = (entry.product_id, entry.location_id)
        state = places.get(key)
        if state is None:
            state = places[key] = ReplayedStock(*key, entry.sku, entry.location_code)
        if entry.version != state.version + 1:
            state.problems.append(f"version jumps from {state.version} to {entry.version}")
        for name in STOCK_QUANTITIES:
            previous = getattr(state, name)
            delta = getattr(entry, f"delta_{name}")
            after = getattr(entry, f"{name}_after")
            if previous + delta != after:
                state.problems.append(
                    f"v{entry.version} {entry.movement}: {name} {previous} {delta:+d} makes "
                    f"{previous + delta}, the row says {after}"
                )
            setattr(state, name, after)
        state.version = entry.version
        state.movements += 1
    return places


@dataclass(frozen=True)
class StockDrift:
    subject: str  # "SKU@LOCATION" for a stock level, "SKU" for the sku's totals
    where: str  # "ledger", "state" or "totals"
    detail: str


def stock_drift(*, check_totals: bool = True, chunk_size: int = 2000) -> Iterator[StockDrift]:
    """Replay the stock ledger and yield each way in which the ledger chain, a stock level
    or (with `check_totals`) the stock_totals projection disagrees.

    Levels and ledger are streamed in (product, location) order and merged, so memory stays
    flat. Outside a transaction on PostgreSQL everything is read in one REPEATABLE READ
    snapshot, so commands committing meanwhile cause no false alarms. The totals are
    compared with the levels, so run the projector first; under write load they can
    differ by what it has not folded yet."""
    from django.db import connection, transaction

    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield from _stock_drift(check_totals, chunk_size)
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield from _stock_drift(check_totals, chunk_size)


def _stock_drift(check_totals: bool, chunk_size: int) -> Iterator[StockDrift]:
    from itertools import groupby

    from history.models import StockLedgerEntry
    from inventory.models import StockLevel

    levels = StockLevel.objects.order_by("product_id", "location_id").values_list(
        "product_id", "location_id", "product__sku", "location__code", *STOCK_QUANTITIES, "version"
    )
    entries = (
        StockLedgerEntry.objects.order_by("product_id", "location_id", "id")
        .only(
            "product_id",
            "location_id",
            "sku",
            "location_code",
            "movement",
            "version",
            *(f"delta_{name}" for name in STOCK_QUANTITIES),
            *(f"{name}_after" for name in STOCK_QUANTITIES),
        )
        .iterator(chunk_size=chunk_size)
    )
    replays = (
        stock_replay(group)[key]
        for key, group in groupby(entries, key=lambda e: (e.product_id, e.location_id))
    )
    replay = next(replays, None)
    for level in levels.iterator(chunk_size=chunk_size):
        key = (level[0], level[1])
        while replay is not None and (replay.product_id, replay.location_id) < key:
            yield from _stock_place_drift(replay, None)
            replay = next(replays, None)
        if replay is not None and (replay.product_id, replay.location_id) == key:
            current, replay = replay, next(replays, None)
        else:
            current = ReplayedStock(*key)
        current.sku, current.location_code = level[2], level[3]
        yield from _stock_place_drift(current, level[4:])
    while replay is not None:
        yield from _stock_place_drift(replay, None)
        replay = next(replays, None)
    if check_totals:
        yield from _stock_totals_drift(chunk_size)


def _stock_place_drift(replayed: ReplayedStock, level: tuple | None) -> Iterator[StockDrift]:
    place = replayed.place
    for problem in replayed.problems:
        yield StockDrift(place, "ledger", problem)
    if level is None:
        yield StockDrift(place, "state", "no stock level, but the ledger has movements")
        return
    for name, actual in zip((*STOCK_QUANTITIES, "version"), level, strict=True):
        expected = getattr(replayed, name)
        if actual != expected:
            yield StockDrift(place, "state", f"{name} is {actual}, the ledger says {expected}")


def _stock_totals_drift(chunk_size: int) -> Iterator[StockDrift]:
    """The stock_totals projection against the levels summed per sku; `movements` against
    the levels' versions (each movement bumps one level's version by one)."""
    from django.db.models import Sum

    from history.models import SkuStockTotals
    from inventory.models import StockLevel

    sums = (
        StockLevel.objects.values("product__sku")
        .annotate(**{name: Sum(name) for name in STOCK_QUANTITIES}, movements=Sum("version"))
        .order_by("product__sku")
    )
    fields = (*STOCK_QUANTITIES, "movements")
    chunk: list[dict] = []
    for row in sums.iterator(chunk_size=chunk_size):
        chunk.append(row)
        if len(chunk) == chunk_size:
            yield from _stock_totals_chunk_drift(chunk, fields)
            chunk = []
    yield from _stock_totals_chunk_drift(chunk, fields)
    orphans = SkuStockTotals.objects.exclude(
        sku__in=StockLevel.objects.values("product__sku")
    ).order_by("sku")
    for totals in orphans.iterator(chunk_size=chunk_size):
        if any(getattr(totals, name) for name in STOCK_QUANTITIES):
            yield StockDrift(totals.sku, "totals", "totals exist, but the sku has no stock levels")


def _stock_totals_chunk_drift(chunk: list[dict], fields: tuple[str, ...]) -> Iterator[StockDrift]:
    from history.models import SkuStockTotals

    if not chunk:
        return
    totals = {
        t.sku: t for t in SkuStockTotals.objects.filter(sku__in=[r["product__sku"] for r in chunk])
    }
    for row in chunk:
        sku = row["product__sku"]
        projected = totals.get(sku)
        if projected is None:
            if any(row[name] for name in fields):
                yield StockDrift(sku, "totals", "no totals, but the levels are not all zero")
            continue
        for name in fields:
            actual, expected = getattr(projected, name), row[name]
            if actual != expected:
                source = "versions" if name == "movements" else "levels"
                yield StockDrift(
                    sku, "totals", f"{name} is {actual}, the {source} sum to {expected}"
                )
