"""What the admin's stock timeline page shows, computed on the server so the page needs no
JavaScript. Pure: stock ledger rows in, table cells and SVG coordinates out."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.utils.safestring import SafeString

from history.admin_cells import badge
from history.models import StockMovementType as Movement

WIDTH = 480
HEIGHT = 140
PAD_LEFT = 56
PAD_RIGHT = 12
PAD_TOP = 10
PAD_BOTTOM = 10
# Beyond this many changes the markers would only blur the lines; the table has them all.
MAX_MARKERS = 200

# A movement's badge in the table: a short label (the full one is its title) and a tone
# (history/static/history/badges.css): stock arriving, leaving, held for orders, corrected.
MOVEMENT_BADGES: dict[str, tuple[str, str]] = {
    Movement.RECEIVE: ("receive", "good"),
    Movement.TRANSFER_IN: ("transfer in", "good"),
    Movement.ISSUE: ("issue", "info"),
    Movement.CONSUME: ("consume", "info"),
    Movement.TRANSFER_OUT: ("transfer out", "info"),
    Movement.TRANSFER_INCOMING: ("in transit", "quiet"),
    Movement.RESERVE: ("reserve", "hold"),
    Movement.RELEASE: ("release", "hold"),
    Movement.ADJUST: ("adjust", "warn"),
    Movement.COUNT: ("count", "warn"),
    Movement.TRANSFER_CANCEL: ("cancelled", "bad"),
}


class StockLedgerRow(Protocol):
    version: int
    occurred_at: datetime
    movement: str
    delta_on_hand: int
    delta_reserved: int
    delta_in_transit: int
    delta_backorder: int
    on_hand_after: int
    reserved_after: int
    in_transit_after: int
    backorder_after: int


@dataclass(frozen=True, slots=True)
class Delta:
    value: int

    @property
    def css_class(self) -> str:
        return "delta-plus" if self.value > 0 else "delta-minus" if self.value < 0 else ""

    def __str__(self) -> str:
        return f"{self.value:+d}" if self.value else "0"


@dataclass(frozen=True, slots=True)
class TimelineRow:
    entry: StockLedgerRow
    on_hand: Delta
    reserved: Delta
    in_transit: Delta
    backorder: Delta
    available_after: int

    @property
    def deltas(self) -> tuple[Delta, Delta, Delta, Delta]:
        return (self.on_hand, self.reserved, self.in_transit, self.backorder)

    @property
    def movement_badge(self) -> SafeString:
        label, tone = MOVEMENT_BADGES[self.entry.movement]
        return badge(label, tone=tone, title=Movement(self.entry.movement).label)

    @property
    def side_deltas(self) -> list[tuple[str, Delta, int]]:
        """In transit and backorder change only on transfers and backordered reservations,
        so the table shows them (name, delta, after) under the movement only then."""
        return [
            (name, delta, after)
            for name, delta, after in (
                ("in transit", self.in_transit, self.entry.in_transit_after),
                ("backorder", self.backorder, self.entry.backorder_after),
            )
            if delta.value
        ]


def timeline_rows(entries: Iterable[StockLedgerRow]) -> list[TimelineRow]:
    return [
        TimelineRow(
            entry=entry,
            on_hand=Delta(entry.delta_on_hand),
            reserved=Delta(entry.delta_reserved),
            in_transit=Delta(entry.delta_in_transit),
            backorder=Delta(entry.delta_backorder),
            available_after=entry.on_hand_after - entry.reserved_after,
        )
        for entry in entries
    ]


@dataclass(frozen=True, slots=True)
class ChartPoint:
    x: float
    y: float
    version: int
    occurred_at: datetime
    quantity: int


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    css_class: str
    polyline: str
    points: tuple[ChartPoint, ...]
    current: int


@dataclass(frozen=True, slots=True)
class StockChart:
    series: tuple[Series, ...]
    max_quantity: int
    start: datetime
    end: datetime
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float


def stock_chart(
    rows: Sequence[StockLedgerRow], *, width: int = WIDTH, height: int = HEIGHT
) -> StockChart | None:
    """Step lines of on hand and reserved after each movement, on one time axis (first to
    last movement) and one quantity scale from 0 to the peak (reserved never exceeds on
    hand, so that is on hand's peak)."""
    rows = sorted(rows, key=lambda row: row.version)
    if not rows:
        return None
    start, end = rows[0].occurred_at, rows[-1].occurred_at
    span = (end - start).total_seconds()
    left, right = float(PAD_LEFT), float(width - PAD_RIGHT)
    top, bottom = float(PAD_TOP), float(height - PAD_BOTTOM)
    peak = max(max(row.on_hand_after, row.reserved_after) for row in rows)
    scale = (bottom - top) / (peak or 1)

    def x_of(moment: datetime) -> float:
        if span <= 0:
            return left
        return round(left + (moment - start).total_seconds() / span * (right - left), 1)

    def series(name: str, css_class: str, attribute: str) -> Series:
        points = tuple(
            ChartPoint(
                x=x_of(row.occurred_at),
                y=round(bottom - getattr(row, attribute) * scale, 1),
                version=row.version,
                occurred_at=row.occurred_at,
                quantity=getattr(row, attribute),
            )
            for row in rows
        )
        return Series(
            name=name,
            css_class=css_class,
            polyline=_step_polyline(points, right),
            points=points if len(points) <= MAX_MARKERS else (),
            current=points[-1].quantity,
        )

    return StockChart(
        series=(
            series("on hand", "on-hand", "on_hand_after"),
            series("reserved", "reserved", "reserved_after"),
        ),
        max_quantity=peak,
        start=start,
        end=end,
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
    )


def _step_polyline(points: tuple[ChartPoint, ...], right: float) -> str:
    """A quantity holds until the next movement, so the line runs flat and then jumps."""
    coords: list[tuple[float, float]] = []

    def add(x: float, y: float) -> None:
        if not coords or coords[-1] != (x, y):
            coords.append((x, y))

    for point in points:
        if coords:
            add(point.x, coords[-1][1])
        add(point.x, point.y)
    if coords[-1][0] < right:
        add(right, coords[-1][1])
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
