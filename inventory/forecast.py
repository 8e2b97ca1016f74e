"""Demand forecast and reorder suggestion for one sku: pure functions, no database.

Demand on a day is what left stock for customers that day (issued or consumed units).
The expected demand per day is the simple exponential smoothing (SES) of that daily series
x_0 … x_{N-1}, oldest first:

    s_0 = x_0,    s_t = alpha * x_t + (1 - alpha) * s_{t-1},    demand = s_{N-1}

alpha = 1 follows the last day only; a small alpha averages over a long window.

The reorder policy is a reorder-point policy over the sku's totals across all locations
(available, and the summed reorder_point and safety_stock), with demand d per day:

- Reorder when available falls to the reorder point: today if available is already at or
  below it, else in floor((available - reorder_point) / d) days. With d = 0 and available
  above the reorder point no reorder is foreseen: quantity 0, date None.
- The suggested quantity brings the stock at that moment (the reorder point, or today's
  available if that is lower) up to the target reorder_point + safety_stock +
  d * lead_time_days, rounded up to whole units; with nothing to order the date is None.
- Days of cover = available / d; None when d = 0 (the stock never runs out).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

# Float noise (0.1 * 3 = 0.30000000000000004) must not push a ceil or floor over a unit.
_PRECISION = 9


@dataclass(frozen=True)
class DailyDemand:
    date: date
    demand: int


@dataclass(frozen=True)
class ReorderSuggestion:
    quantity: int
    date: date | None
    target: float  # reorder_point + safety_stock + demand * lead_time_days


def daily_series(totals: Mapping[date, int], *, end: date, days: int) -> list[DailyDemand]:
    """The `days` days ending with `end` (inclusive), oldest first; days without demand
    are 0."""
    if days < 1:
        raise ValueError("days must be at least 1")
    start = end - timedelta(days=days - 1)
    return [
        DailyDemand(day, totals.get(day, 0))
        for day in (start + timedelta(days=offset) for offset in range(days))
    ]


def exponential_smoothing(values: Sequence[float], *, alpha: float) -> float:
    """The last SES level of `values` (oldest first), seeded with the first value; 0 for
    an empty series."""
    if not 0 < alpha <= 1:
        raise ValueError("alpha must be in (0, 1]")
    if not values:
        return 0.0
    level = float(values[0])
    for value in values[1:]:
        level = alpha * value + (1 - alpha) * level
    return level


def days_of_cover(*, available: int, demand: float) -> float | None:
    if demand <= 0:
        return None
    return max(available, 0) / demand


def reorder_suggestion(
    *,
    available: int,
    reorder_point: int,
    safety_stock: int,
    demand: float,
    lead_time_days: int,
    today: date,
) -> ReorderSuggestion:
    """See the module docstring for the policy."""
    if demand < 0 or lead_time_days < 0:
        raise ValueError("demand and lead_time_days must not be negative")
    target = reorder_point + safety_stock + demand * lead_time_days
    if available <= reorder_point:
        when = today
    elif demand == 0:
        return ReorderSuggestion(quantity=0, date=None, target=target)
    else:
        in_days = math.floor(round((available - reorder_point) / demand, _PRECISION))
        # Beyond the calendar (a trickle of demand against a mountain of stock): no date.
        when = today + timedelta(days=in_days) if in_days <= (date.max - today).days else None
    at_order_time = min(available, reorder_point)
    quantity = max(0, math.ceil(round(target - at_order_time, _PRECISION)))
    return ReorderSuggestion(quantity=quantity, date=when if quantity else None, target=target)
