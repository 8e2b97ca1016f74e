"""The admin index's dashboard (orders.admin_site): every figure read by one selector, and
the links to the filtered admin lists behind them. Nothing here queries by itself."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from history.models import LedgerKind, LedgerSeal, Source
from history.projector import Lag
from history.selectors import (
    DailyChanges,
    OutboxStatus,
    adjustments_per_day,
    ledger_seal_latest,
    outbox_backlog,
    projection_lag_list,
)
from inventory.selectors import LedgerChange, LowStock, ledger_changes_latest, stock_low_summary

CHART_DAYS = 30
# One panel of stacked bars per ledger, one above the other, sharing the days below them.
WIDTH = 620
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 40, 8, 2, 18
PANEL_TITLE, PANEL_PLOT, PANEL_GAP = 16, 76, 10
SOURCE_CLASSES = {Source.ADMIN: "admin", Source.API: "api", Source.SYSTEM: "system"}
# ledger: (panel title, the admin list of its rows)
PANELS = {
    LedgerKind.ORDER: ("Order changes", "history_orderledgerentry"),
    LedgerKind.STOCK: ("Stock movements", "history_stockledgerentry"),
}


def _changelist(model: str, **params) -> str:
    url = reverse(f"admin:{model}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def _day_start(day: date) -> datetime:
    """Midnight starting `day` in settings.TIME_ZONE, the zone of the projection's days."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_default_timezone())


@dataclass(frozen=True, slots=True)
class Bar:
    """One segment of a day's stack: the rows of one ledger, day and source."""

    ledger: str  # a LedgerKind value
    day: date
    source: str  # a Source value
    rows: int
    x: float
    y: float
    height: float
    css_class: str
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Panel:
    """One ledger's stacked bars, on a scale of its own (`peak` at `top`)."""

    ledger: str  # a LedgerKind value
    title: str
    ledger_label: str
    top: float
    bottom: float
    peak: int
    total: dict[str, int]  # source label -> rows over the days
    bars: list[Bar]
    url: str  # the ledger's rows since the first day

    @property
    def rows(self) -> int:
        return sum(self.total.values())


@dataclass(frozen=True, slots=True)
class AdjustmentsChart:
    days: list[DailyChanges]
    panels: list[Panel]
    width: int
    height: int
    left: float
    right: float
    bar_width: float

    @property
    def first_day(self):
        return self.days[0].day

    @property
    def last_day(self):
        return self.days[-1].day

    @property
    def bars(self) -> list[Bar]:
        return [bar for panel in self.panels for bar in panel.bars]

    @property
    def legend(self) -> list[tuple[str, str]]:
        """(css class, label) of each source, bottom of the stack first."""
        return [(SOURCE_CLASSES[source], source.label) for source in Source]


def _panel(ledger: LedgerKind, days: list[DailyChanges], top: float, slot: float) -> Panel:
    """Stacked bars, one per day (admin, API, system from the bottom up), each segment a
    link to the ledger's admin list filtered on that day and source."""
    title, model = PANELS[ledger]
    bottom = top + PANEL_PLOT
    peak = max((day.total(ledger) for day in days), default=0)
    scale = PANEL_PLOT / (peak or 1)
    bars = []
    for n, day in enumerate(days):
        start = _day_start(day.day)
        span = {"occurred_at__gte": start, "occurred_at__lt": start + timedelta(days=1)}
        y = bottom
        for source in Source:
            count = day.by_ledger[ledger][source.value]
            if not count:
                continue
            height = count * scale
            y -= height
            bars.append(
                Bar(
                    ledger=ledger,
                    day=day.day,
                    source=source.value,
                    rows=count,
                    x=round(PAD_LEFT + n * slot + 1.5, 1),
                    y=round(y, 1),
                    height=round(height, 1),
                    css_class=SOURCE_CLASSES[source],
                    title=f"{day.day:%Y-%m-%d} · {title} · {source.label}: {count:,}",
                    url=_changelist(model, source__exact=source, **span),
                )
            )
    return Panel(
        ledger=ledger,
        title=title,
        ledger_label=ledger.label.lower(),
        top=top,
        bottom=bottom,
        peak=peak,
        total={s.label: sum(day.by_ledger[ledger][s.value] for day in days) for s in Source},
        bars=bars,
        url=_changelist(model, occurred_at__gte=_day_start(days[0].day)),
    )


def adjustments_chart(days: list[DailyChanges]) -> AdjustmentsChart:
    """A panel per ledger (order changes above stock movements), the days along the bottom."""
    left, right = float(PAD_LEFT), float(WIDTH - PAD_RIGHT)
    slot = (right - left) / len(days)
    panels = []
    top = float(PAD_TOP)
    for ledger in PANELS:
        top += PANEL_TITLE
        panels.append(_panel(ledger, days, top, slot))
        top += PANEL_PLOT + PANEL_GAP
    return AdjustmentsChart(
        days=days,
        panels=panels,
        width=WIDTH,
        height=round(top - PANEL_GAP + PAD_BOTTOM),
        left=left,
        right=right,
        bar_width=round(max(slot - 3, 1), 1),
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

    @property
    def oldest_pending(self) -> str:
        return duration_text(self.outbox["seconds_behind"])


def duration_text(seconds: float) -> str:
    """'42 s', '17 min', '5 h', '89 d': the unit that keeps the figure short."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"


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
