from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Case, F, Prefetch, QuerySet, Sum, When
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from config.errors import NotFound
from history.models import SkuStockTotals, StockLedgerEntry, StockMovementType
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
        raise NotFound(f"Product {sku} does not exist.")
    return product


# --- Stock levels ---------------------------------------------------------------------------


def location_list() -> QuerySet[Location]:
    return Location.objects.order_by("-id")


def location_get(*, code: str) -> Location:
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise NotFound(f"Location {code} does not exist.")
    return location


def transfer_list() -> QuerySet[Transfer]:
    return Transfer.objects.select_related("product", "from_location", "to_location").order_by(
        "-id"
    )


def transfer_get(*, transfer_id: int) -> Transfer:
    transfer = transfer_list().filter(pk=transfer_id).first()
    if transfer is None:
        raise NotFound(f"Transfer {transfer_id} does not exist.")
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


def reservation_get(*, reservation_id: int) -> Reservation:
    reservation = reservation_list().filter(pk=reservation_id).first()
    if reservation is None:
        raise NotFound(f"Reservation {reservation_id} does not exist.")
    return reservation


def stock_level_list() -> QuerySet[StockLevel]:
    return StockLevel.objects.select_related("product", "location")


def stock_level_low_list() -> QuerySet[StockLevel]:
    """Levels at or below their reorder point, compared in SQL on the generated
    `available` column."""
    return stock_level_list().filter(available__lte=F("reorder_point"))


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
