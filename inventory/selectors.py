import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import groupby
from operator import itemgetter

from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    When,
    Window,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from config.errors import NotFound
from history.archive import archived_chain_rows, archived_runs
from history.chain import STOCK_FIELDS, stock_entry_hash
from history.models import (
    LedgerKind,
    OrderLedgerEntry,
    SkuDailyAdjustments,
    SkuDemand,
    SkuStockTotals,
    StockLedgerEntry,
    StockMovementType,
)
from history.seals import NO_LEDGER_ROWS, chain_proof
from history.selectors import STOCK_QUANTITIES, ReplayedStock, stock_replay
from history.verification import chains_problems, ledger_rows
from inventory import forecast
from inventory.models import (
    Location,
    Product,
    Reservation,
    ReservationAllocation,
    StockLevel,
    Transfer,
)


def product_list() -> QuerySet[Product]:
    return Product.objects.order_by("id")


def product_get(*, sku: str) -> Product:
    product = Product.objects.filter(sku=sku).first()
    if product is None:
        raise NotFound("Product", sku)
    return product


# --- Stock levels ---------------------------------------------------------------------------


def location_list() -> QuerySet[Location]:
    return Location.objects.order_by("-id")


def location_get(*, code: str) -> Location:
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise NotFound("Location", code)
    return location


def transfer_list() -> QuerySet[Transfer]:
    return Transfer.objects.select_related("product", "from_location", "to_location").order_by(
        "-id"
    )


def transfer_get(*, transfer_id: int) -> Transfer:
    transfer = transfer_list().filter(pk=transfer_id).first()
    if transfer is None:
        raise NotFound("Transfer", transfer_id)
    return transfer


def reservation_list() -> QuerySet[Reservation]:
    allocations = ReservationAllocation.objects.select_related("location").order_by(
        "location__priority", "location__code"
    )
    return (
        Reservation.objects.select_related("product")
        .prefetch_related(Prefetch("allocations", queryset=allocations))
        .order_by("-id")
    )


def order_reservation_list(*, order_id: int) -> QuerySet[Reservation]:
    """The order's reservations (every status), newest first, each with its allocations in
    the order they were reserved from. Each allocation carries `stock_level_id`, the stock
    level its units are held at, `reserved`, the part of it that was on hand (the rest is
    `backordered`), and `level_available`, that level's on hand less reserved now. Two
    queries, whatever the number of lines."""
    level = StockLevel.objects.filter(
        product_id=OuterRef("reservation__product_id"), location_id=OuterRef("location_id")
    )
    allocations = (
        ReservationAllocation.objects.select_related("location")
        .annotate(
            stock_level_id=Subquery(level.values("pk")[:1]),
            level_available=Subquery(level.values("available")[:1]),
            reserved=F("quantity") - F("backordered"),
        )
        .order_by("location__priority", "location__code")
    )
    return (
        Reservation.objects.filter(order_id=order_id)
        .select_related("product")
        .prefetch_related(Prefetch("allocations", queryset=allocations))
        .order_by("-id")
    )


def reservation_get(*, reservation_id: int) -> Reservation:
    reservation = reservation_list().filter(pk=reservation_id).first()
    if reservation is None:
        raise NotFound("Reservation", reservation_id)
    return reservation


def stock_level_list() -> QuerySet[StockLevel]:
    return StockLevel.objects.select_related("product", "location")


def stock_level_low_list() -> QuerySet[StockLevel]:
    """Levels at or below their reorder point, compared in SQL on the generated
    `available` column."""
    return stock_level_list().filter(available__lte=F("reorder_point"))


@dataclass(frozen=True)
class LowStock:
    count: int
    worst: list[StockLevel]  # each with `shortfall` = reorder point - available


def stock_low_summary(*, limit: int = 10) -> LowStock:
    """How many levels are low, and the `limit` furthest below their reorder point (the
    lowest available minus reorder point first), in one query. Reads the `is_low` flag,
    which the stock services keep equal to available <= reorder point on every movement
    and threshold change (services._low_crossings), through its partial index: it costs
    the low levels, not every level."""
    worst = list(
        stock_level_list()
        .filter(is_low=True)
        .annotate(shortfall=F("reorder_point") - F("available"), low_count=Window(Count("*")))
        .order_by("-shortfall", "id")[:limit]
    )
    return LowStock(count=worst[0].low_count if worst else 0, worst=worst)


@dataclass(frozen=True)
class StockOverview:
    product: Product
    levels: list[StockLevel]
    totals: SkuStockTotals
    pending_movements: int

    @property
    def totals_lagging(self) -> bool:
        return self.pending_movements > 0


def stock_overview_get(*, sku: str) -> StockOverview:
    """A sku's levels per location and its totals across locations from the stock_totals
    projection. Every movement bumps exactly one level's version by one, so the sum of the
    versions counts the committed movements, and the difference to the projection's
    `movements` is how many it has not folded yet."""
    product = product_get(sku=sku)
    levels = list(
        StockLevel.objects.select_related("location")
        .filter(product=product)
        .order_by("location__priority", "location__code")
    )
    for level in levels:
        level.product = product
    totals = SkuStockTotals.objects.filter(sku=sku).first() or SkuStockTotals(sku=sku)
    committed = sum(level.version for level in levels)
    return StockOverview(
        product=product,
        levels=levels,
        totals=totals,
        pending_movements=max(0, committed - totals.movements),
    )


# --- Stock ledger ---------------------------------------------------------------------------


def stock_ledger_entries() -> QuerySet[StockLedgerEntry]:
    return StockLedgerEntry.objects.order_by("id")


DEMAND_MOVEMENTS = (StockMovementType.ISSUE, StockMovementType.CONSUME)


def stock_daily_demand(*, product: Product, start: date, end: date) -> dict[date, int]:
    """Units issued or consumed per day from `start` to `end` (inclusive, days in the
    current time zone), summed in SQL over the (product, occurred_at) index. An issue's
    backordered shortfall was demanded too, so it counts; a consumed reservation counts
    all its units, backordered or not."""
    tz = timezone.get_current_timezone()
    demand = Case(
        When(movement=StockMovementType.ISSUE, then=F("delta_backorder") - F("delta_on_hand")),
        default=-F("delta_on_hand"),
    )
    rows = (
        StockLedgerEntry.objects.filter(
            product=product,
            occurred_at__gte=datetime.combine(start, time.min, tzinfo=tz),
            occurred_at__lt=datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz),
            movement__in=DEMAND_MOVEMENTS,
        )
        .annotate(day=TruncDate("occurred_at", tzinfo=tz))
        .values("day")
        .annotate(demand=Sum(demand))
        .order_by("day")
    )
    return {row["day"]: row["demand"] for row in rows}


@dataclass(frozen=True)
class StockForecast:
    product: Product
    days: int
    alpha: float
    lead_time_days: int
    series: list[forecast.DailyDemand]
    average_daily_demand: float
    smoothed_daily_demand: float
    on_hand: int
    reserved: int
    available: int
    reorder_point: int
    safety_stock: int
    days_of_cover: float | None
    reorder: forecast.ReorderSuggestion


def stock_forecast_get(
    *,
    sku: str,
    days: int = 28,
    alpha: float = 0.3,
    lead_time_days: int = 7,
    today: date | None = None,
) -> StockForecast:
    """Demand over the last `days` days (today included), smoothed, against the sku's
    current totals over every location; the policy is in inventory.forecast."""
    product = product_get(sku=sku)
    today = today or timezone.localdate()
    series = forecast.daily_series(
        stock_daily_demand(product=product, start=today - timedelta(days=days - 1), end=today),
        end=today,
        days=days,
    )
    demands = [day.demand for day in series]
    smoothed = forecast.exponential_smoothing(demands, alpha=alpha)
    sums = StockLevel.objects.filter(product=product).aggregate(
        on_hand=Coalesce(Sum("on_hand"), 0),
        reserved=Coalesce(Sum("reserved"), 0),
        available=Coalesce(Sum("available"), 0),
        reorder_point=Coalesce(Sum("reorder_point"), 0),
        safety_stock=Coalesce(Sum("safety_stock"), 0),
    )
    return StockForecast(
        product=product,
        days=days,
        alpha=alpha,
        lead_time_days=lead_time_days,
        series=series,
        average_daily_demand=sum(demands) / days,
        smoothed_daily_demand=smoothed,
        **sums,
        days_of_cover=forecast.days_of_cover(available=sums["available"], demand=smoothed),
        reorder=forecast.reorder_suggestion(
            available=sums["available"],
            reorder_point=sums["reorder_point"],
            safety_stock=sums["safety_stock"],
            demand=smoothed,
            lead_time_days=lead_time_days,
            today=today,
        ),
    )


# --- Demand (from the order ledger's projections) ------------------------------------------


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
    demand = SkuDemand.objects.filter(sku=sku).first()
    if demand is None:
        if not Product.objects.filter(sku=sku).exists():
            raise NotFound("Product", sku)
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


# --- Replaying the stock ledger against the levels -------------------------------------------


@dataclass(frozen=True)
class StockDrift:
    subject: str  # "SKU@LOCATION" for a stock level, "SKU" for the sku's totals
    where: str  # "ledger", "state" or "totals"
    detail: str


def stock_drift(*, check_totals: bool = True, chunk_size: int = 2000) -> Iterator[StockDrift]:
    """Replay the stock ledger and yield each way in which the ledger chain, a stock level
    or (with `check_totals`) the stock_totals projection disagrees.

    Levels and ledger are streamed in (product, location) order and merged, so memory stays
    flat. Outside a transaction everything is read in one REPEATABLE READ
    snapshot, so commands committing meanwhile cause no false alarms. The totals are
    compared with the levels, so run the projector first; under write load they can
    differ by what it has not folded yet."""
    if connection.in_atomic_block:
        yield from _stock_drift(check_totals, chunk_size)
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield from _stock_drift(check_totals, chunk_size)


def _stock_drift(check_totals: bool, chunk_size: int) -> Iterator[StockDrift]:
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
    # An archived month's movements continue from the heads the archive registered.
    entries = heapq.merge(
        entries,
        (run for _, run in archived_runs(LedgerKind.STOCK)),
        key=lambda e: (e.product_id, e.location_id, e.id),
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


def stock_chain_problems(
    *, places: Iterable[tuple[int, int]] | None = None
) -> Iterator[tuple[tuple[int, int], str]]:
    """((product id, location id), problem) for every break in the stock levels' hash
    chains (history.verification), of every level or of these places."""
    levels = StockLevel.objects.order_by("product_id", "location_id")
    entries = StockLedgerEntry.objects.order_by("product_id", "location_id", "id")
    if places is not None:
        places = set(places)
        wanted = Q(pk__in=[])
        for product_id, location_id in places:
            wanted |= Q(product_id=product_id, location_id=location_id)
        levels, entries = levels.filter(wanted), entries.filter(wanted)
    heads = levels.values_list("product_id", "location_id", "ledger_head").iterator(2000)
    products = None if places is None else {product for product, _ in places}
    archived = archived_chain_rows(LedgerKind.STOCK, aggregates=products)
    if places is not None:
        archived = (r for r in archived if (r["product_id"], r["location_id"]) in places)
    rows = heapq.merge(
        ledger_rows(entries, key=["product_id", "location_id"], fields=STOCK_FIELDS),
        archived,
        key=itemgetter("product_id", "location_id", "id"),
    )
    yield from chains_problems(
        (((product, location), head) for product, location, head in heads),
        groupby(rows, key=itemgetter("product_id", "location_id")),
        stock_entry_hash,
    )


def stock_level_proof(*, sku: str, location: str) -> dict:
    """What proves a stock level's ledger to someone who does not trust this server
    (history.seals.chain_proof), or NotFound."""
    product, place = product_get(sku=sku), location_get(code=location)
    entries = StockLedgerEntry.objects.filter(product=product, location=place)
    proof = chain_proof(entries=entries)
    aggregate = {"type": "stock", "sku": sku, "location_code": location}
    return {"aggregate": aggregate, **(proof or NO_LEDGER_ROWS)}


@dataclass(frozen=True, slots=True)
class LedgerChange:
    """One row of either ledger, as the latest changes list it. `target_id` is the order's
    id (kind "order") or the stock level's id (kind "stock"; None if the level is gone)."""

    kind: str  # "order" or "stock"
    id: int
    target_id: int | None
    place: str  # "#12 SKU-1" or "SKU-1@WH-1"
    change: str  # the event type or movement
    delta: int
    actor: str
    source: str
    occurred_at: datetime


def ledger_changes_latest(*, limit: int = 10) -> list[LedgerChange]:
    """The latest `limit` rows of both ledgers together, newest first: two queries, each
    the last `limit` rows of one ledger by id (its primary key)."""
    level = StockLevel.objects.filter(
        product_id=OuterRef("product_id"), location_id=OuterRef("location_id")
    ).values("pk")[:1]
    order_rows = OrderLedgerEntry.objects.order_by("-id").values_list(
        "id", "order_id", "sku", "event_type", "delta", "actor", "source", "occurred_at"
    )[:limit]
    stock_rows = (
        StockLedgerEntry.objects.order_by("-id")
        .annotate(level_id=Subquery(level))
        .values_list(
            "id",
            "level_id",
            "sku",
            "location_code",
            "movement",
            "delta_on_hand",
            "actor",
            "source",
            "occurred_at",
        )[:limit]
    )
    changes = [
        LedgerChange("order", pk, order_id, f"#{order_id} {sku}", event, delta, *rest)
        for pk, order_id, sku, event, delta, *rest in order_rows
    ] + [
        LedgerChange("stock", pk, level_id, f"{sku}@{code}", movement, delta, *rest)
        for pk, level_id, sku, code, movement, delta, *rest in stock_rows
    ]
    changes.sort(key=lambda change: (change.occurred_at, change.kind, change.id), reverse=True)
    return changes[:limit]
