"""Geometry of the quantity-over-time charts on the admin's order timeline page, computed
on the server so the page needs no JavaScript (pure: ledger rows in, SVG coordinates out),
and the stock movements the order caused, matched to the order change that caused them."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

WIDTH = 360
HEIGHT = 120
PAD_LEFT = 56
PAD_RIGHT = 12
PAD_TOP = 10
PAD_BOTTOM = 10


class LedgerRow(Protocol):
    sku: str
    version: int
    occurred_at: datetime
    quantity_after: int


@dataclass(frozen=True, slots=True)
class ChartPoint:
    x: float
    y: float
    version: int
    occurred_at: datetime
    quantity: int


@dataclass(frozen=True, slots=True)
class LineChart:
    sku: str
    points: tuple[ChartPoint, ...]
    polyline: str
    max_quantity: int
    current_quantity: int
    start: datetime
    end: datetime
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float


def line_charts(
    rows: Iterable[LedgerRow], *, width: int = WIDTH, height: int = HEIGHT
) -> list[LineChart]:
    """One step chart per sku, in order of first appearance. All charts share the time axis
    (the order's first to last change), so they line up under each other; each has its own
    quantity scale from 0 to the line's peak."""
    rows = sorted(rows, key=lambda row: row.version)
    if not rows:
        return []
    start = min(row.occurred_at for row in rows)
    end = max(row.occurred_at for row in rows)
    span = (end - start).total_seconds()
    left, right = float(PAD_LEFT), float(width - PAD_RIGHT)
    top, bottom = float(PAD_TOP), float(height - PAD_BOTTOM)

    def x_of(moment: datetime) -> float:
        if not span:
            return left
        return round(left + (moment - start).total_seconds() / span * (right - left), 1)

    by_sku: dict[str, list[LedgerRow]] = {}
    for row in rows:
        by_sku.setdefault(row.sku, []).append(row)

    charts = []
    for sku, sku_rows in by_sku.items():
        peak = max(row.quantity_after for row in sku_rows)
        scale = (bottom - top) / (peak or 1)
        points = tuple(
            ChartPoint(
                x=x_of(row.occurred_at),
                y=round(bottom - row.quantity_after * scale, 1),
                version=row.version,
                occurred_at=row.occurred_at,
                quantity=row.quantity_after,
            )
            for row in sku_rows
        )
        charts.append(
            LineChart(
                sku=sku,
                points=points,
                polyline=_step_polyline(points, right),
                max_quantity=peak,
                current_quantity=points[-1].quantity,
                start=start,
                end=end,
                width=width,
                height=height,
                left=left,
                right=right,
                top=top,
                bottom=bottom,
            )
        )
    return charts


def _step_polyline(points: tuple[ChartPoint, ...], right: float) -> str:
    """A quantity holds until the next change, so the line runs flat and then jumps."""
    coords: list[tuple[float, float]] = []
    for point in points:
        if coords:
            coords.append((point.x, coords[-1][1]))
        coords.append((point.x, point.y))
    if coords[-1][0] < right:
        coords.append((right, coords[-1][1]))
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)


# --- Stock movements under each order change --------------------------------------------------


def attach_stock_movements(entries: list, movements: Iterable) -> list:
    """Set `stock_movements` on the last shown row of each order change: the stock rows
    written in the same transaction. Order commands reserve, release and consume stock in
    their own transaction but under separate events, so the match is by `txid`, not
    `event_id`. Where several changes share a transaction (a batch, or a test's wrapping
    transaction), a row goes to the latest of them recorded at or before it (the command
    stamps the order change before it moves the stock), else to the first. Returns the
    movements that match no shown change."""
    changes: dict[int, dict[int, object]] = {}
    for entry in entries:
        entry.stock_movements = []
        changes.setdefault(entry.txid, {})[entry.version] = entry
    other = []
    for movement in movements:
        candidates = list(changes.get(movement.txid, {}).values())
        if not candidates:
            other.append(movement)
            continue
        earlier = [c for c in candidates if c.occurred_at <= movement.occurred_at]
        (earlier[-1] if earlier else candidates[0]).stock_movements.append(movement)
    return other
