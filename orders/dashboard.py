"""The admin index's dashboard (orders.admin_site): every figure read by one selector, and
the links to the filtered admin lists behind them. Nothing here queries by itself."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from history.models import LedgerSeal, Source
from history.projector import Lag
from history.selectors import (
    DailyAdjustments,
    OutboxStatus,
    adjustments_per_day,
    ledger_seal_latest,
    outbox_backlog,
    projection_lag_list,
)
from inventory.selectors import LedgerChange, LowStock, ledger_changes_latest, stock_low_summary

CHART_DAYS = 30
WIDTH, HEIGHT = 640, 170
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 40, 8, 10, 22
SOURCE_CLASSES = {Source.ADMIN: "admin", Source.API: "api", Source.SYSTEM: "system"}


def _changelist(model: str, **params) -> str:
    url = reverse(f"admin:{model}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    height: float
    css_class: str
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class AdjustmentsChart:
    days: list[DailyAdjustments]
    bars: list[Bar]
    peak: int
    total: dict[str, int]
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    bar_width: float
    url: str

    @property
    def first_day(self):
        return self.days[0].day

    @property
    def last_day(self):
        return self.days[-1].day


def adjustments_chart(days: list[DailyAdjustments]) -> AdjustmentsChart:
    """Stacked bars, one per day (admin, API, system from the bottom up), each segment a
    link to the order ledger filtered on that day and source."""
    left, right = float(PAD_LEFT), float(WIDTH - PAD_RIGHT)
    top, bottom = float(PAD_TOP), float(HEIGHT - PAD_BOTTOM)
    peak = max((day.total for day in days), default=0)
    scale = (bottom - top) / (peak or 1)
    slot = (right - left) / len(days)
    bar_width = round(max(slot - 3, 1), 1)
    bars = []
    for n, day in enumerate(days):
        start = timezone.make_aware(datetime.combine(day.day, datetime.min.time()))
        span = {"occurred_at__gte": start, "occurred_at__lt": start + timedelta(days=1)}
        y = bottom
        for source in Source:
            count = day.by_source[source.value]
            if not count:
                continue
            height = count * scale
            y -= height
            bars.append(
                Bar(
                    x=round(left + n * slot + 1.5, 1),
                    y=round(y, 1),
                    height=round(height, 1),
                    css_class=SOURCE_CLASSES[source],
                    title=f"{day.day:%Y-%m-%d} · {source.label}: {count:,}",
                    url=_changelist("history_orderledgerentry", source__exact=source, **span),
                )
            )
    first = timezone.make_aware(datetime.combine(days[0].day, datetime.min.time()))
    return AdjustmentsChart(
        days=days,
        bars=bars,
        peak=peak,
        total={s.label: sum(day.by_source[s.value] for day in days) for s in Source},
        width=WIDTH,
        height=HEIGHT,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        bar_width=bar_width,
        url=_changelist("history_orderledgerentry", occurred_at__gte=first),
    )


@dataclass(frozen=True, slots=True)
class Change:
    row: LedgerChange
    url: str


@dataclass(frozen=True, slots=True)
class Dashboard:
    low_stock: LowStock
    low_stock_url: str
    outbox: dict
    backlog_url: str
    dead_letters_url: str
    outbox_url: str
    projections: list[tuple[str, Lag]]
    projections_url: str
    chart: AdjustmentsChart
    changes: list[Change]
    seal: LedgerSeal | None
    seal_age: timedelta | None
    seals_url: str
    retry_allowed: bool  # the user gets the outbox list's retry action

    @property
    def projections_behind(self) -> int:
        return sum(lag.events_behind for _, lag in self.projections)


def _change_url(change: LedgerChange) -> str:
    if change.kind == "order":
        return reverse("admin:orders_order_timeline", args=[change.target_id])
    if change.target_id is None:
        return _changelist("history_stockledgerentry", q=change.place.split("@")[0])
    return reverse("admin:inventory_stocklevel_timeline", args=[change.target_id])


def dashboard_get(*, retry_allowed: bool) -> Dashboard:
    seal = ledger_seal_latest()
    return Dashboard(
        low_stock=stock_low_summary(limit=10),
        low_stock_url=_changelist("inventory_stocklevel", low="yes"),
        outbox=outbox_backlog(),
        # Unpublished and not dead-lettered, oldest first (o=1: the id column, ascending).
        backlog_url=_changelist(
            "history_outboxevent", published_at__isnull=1, dead_lettered_at__isnull=1, o=1
        ),
        dead_letters_url=_changelist("history_outboxevent", status=OutboxStatus.DEAD_LETTERED),
        outbox_url=_changelist("history_outboxevent"),
        projections=projection_lag_list(),
        projections_url=_changelist("history_projectioncheckpoint"),
        chart=adjustments_chart(adjustments_per_day(days=CHART_DAYS)),
        changes=[Change(row, _change_url(row)) for row in ledger_changes_latest(limit=10)],
        seal=seal,
        seal_age=timezone.now() - seal.sealed_at if seal else None,
        seals_url=_changelist("history_ledgerseal"),
        retry_allowed=retry_allowed,
    )
