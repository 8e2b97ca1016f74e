"""The pure forecast functions: the daily series, exponential smoothing, days of cover and
the reorder suggestion."""

from datetime import date

import pytest

from inventory.forecast import (
    DailyDemand,
    ReorderSuggestion,
    daily_series,
    days_of_cover,
    exponential_smoothing,
    reorder_suggestion,
)

TODAY = date(2026, 3, 10)


# --- daily_series ---------------------------------------------------------------------------


def test_daily_series_fills_missing_days_with_zero_oldest_first():
    # given
    totals = {date(2026, 3, 8): 5, date(2026, 3, 10): 2}

    # when
    series = daily_series(totals, end=TODAY, days=4)

    # then
    assert series == [
        DailyDemand(date(2026, 3, 7), 0),
        DailyDemand(date(2026, 3, 8), 5),
        DailyDemand(date(2026, 3, 9), 0),
        DailyDemand(date(2026, 3, 10), 2),
    ]


def test_daily_series_ignores_days_outside_the_window_and_crosses_month_ends():
    # given
    totals = {date(2026, 2, 26): 9, date(2026, 2, 28): 3, date(2026, 3, 2): 1}

    # when
    series = daily_series(totals, end=date(2026, 3, 1), days=2)

    # then
    assert series == [DailyDemand(date(2026, 2, 28), 3), DailyDemand(date(2026, 3, 1), 0)]


def test_daily_series_of_one_day_is_the_end_day():
    assert daily_series({}, end=TODAY, days=1) == [DailyDemand(TODAY, 0)]


def test_daily_series_needs_at_least_one_day():
    with pytest.raises(ValueError, match="days"):
        daily_series({}, end=TODAY, days=0)


# --- exponential_smoothing -------------------------------------------------------------------


def test_smoothing_folds_oldest_first_seeded_with_the_first_value():
    # given: s0 = 10, s1 = .5*0 + .5*10 = 5, s2 = .5*4 + .5*5 = 4.5, s3 = .5*8 + .5*4.5 = 6.25
    values = [10, 0, 4, 8]

    # when / then
    assert exponential_smoothing(values, alpha=0.5) == 6.25


def test_smoothing_with_a_quarter_alpha():
    # s0 = 8, s1 = .25*0 + .75*8 = 6, s2 = .25*12 + .75*6 = 7.5
    assert exponential_smoothing([8, 0, 12], alpha=0.25) == 7.5


def test_alpha_one_follows_the_last_day_only():
    assert exponential_smoothing([3, 50, 7], alpha=1) == 7.0


def test_a_tiny_alpha_barely_moves_from_the_first_value():
    # s = 10 * (1 - a)^2 + 0 stays at ~10
    assert exponential_smoothing([10, 0, 0], alpha=1e-9) == pytest.approx(10, abs=1e-7)


@pytest.mark.parametrize("alpha", [0, -0.1, 1.0000001, 2])
def test_alpha_outside_zero_exclusive_to_one_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        exponential_smoothing([1, 2], alpha=alpha)


def test_a_constant_series_smooths_to_the_constant():
    assert exponential_smoothing([4] * 28, alpha=0.3) == pytest.approx(4.0, abs=1e-12)


def test_no_demand_smooths_to_zero():
    assert exponential_smoothing([0] * 28, alpha=0.3) == 0.0


def test_an_empty_series_smooths_to_zero_and_one_value_to_itself():
    assert exponential_smoothing([], alpha=0.3) == 0.0
    assert exponential_smoothing([7], alpha=0.3) == 7.0


# --- days_of_cover ---------------------------------------------------------------------------


def test_days_of_cover_is_available_over_demand():
    assert days_of_cover(available=89, demand=6.25) == 14.24


def test_days_of_cover_is_none_without_demand():
    assert days_of_cover(available=50, demand=0) is None
    assert days_of_cover(available=0, demand=0.0) is None


def test_days_of_cover_of_no_stock_is_zero():
    assert days_of_cover(available=0, demand=3) == 0.0


# --- reorder_suggestion ----------------------------------------------------------------------


def _suggest(**overrides) -> ReorderSuggestion:
    arguments = {
        "available": 30,
        "reorder_point": 10,
        "safety_stock": 5,
        "demand": 2.0,
        "lead_time_days": 7,
        "today": TODAY,
    }
    return reorder_suggestion(**(arguments | overrides))


def test_above_the_reorder_point_reorder_when_demand_reaches_it():
    # given: 20 units above the reorder point at 2 a day -> in 10 days; then order up to
    # 10 + 5 + 2 * 7 = 29 from the 10 left

    # when
    suggestion = _suggest()

    # then
    assert suggestion == ReorderSuggestion(quantity=19, date=date(2026, 3, 20), target=29.0)


def test_the_reorder_date_rounds_down_to_the_last_whole_day():
    # 15 units above at 2 a day: 7.5 days -> day 7
    assert _suggest(available=25).date == date(2026, 3, 17)


def test_below_the_reorder_point_reorder_today_up_to_the_target():
    # 10 + 5 + 14 - 4
    assert _suggest(available=4) == ReorderSuggestion(quantity=25, date=TODAY, target=29.0)


def test_at_the_reorder_point_exactly_reorder_today():
    assert _suggest(available=10) == ReorderSuggestion(quantity=19, date=TODAY, target=29.0)


def test_without_demand_and_above_the_reorder_point_nothing_is_due():
    assert _suggest(demand=0) == ReorderSuggestion(quantity=0, date=None, target=15.0)


def test_without_demand_but_below_the_reorder_point_refill_today_to_point_plus_safety():
    assert _suggest(demand=0, available=3) == ReorderSuggestion(
        quantity=12, date=TODAY, target=15.0
    )


def test_nothing_to_order_has_no_date():
    suggestion = _suggest(available=0, reorder_point=0, safety_stock=0, demand=0)
    assert suggestion == ReorderSuggestion(quantity=0, date=None, target=0.0)


def test_fractional_demand_rounds_the_quantity_up_to_whole_units():
    # 0 + 0 + 2.5 * 3 = 7.5 -> 8
    suggestion = _suggest(
        available=100, reorder_point=0, safety_stock=0, demand=2.5, lead_time_days=3
    )
    assert (suggestion.quantity, suggestion.date) == (8, date(2026, 4, 19))


def test_float_noise_does_not_add_a_unit():
    # 0.1 * 3 is 0.30000000000000004; times 10 days is 3, not 4
    suggestion = _suggest(
        available=100, reorder_point=0, safety_stock=0, demand=0.1 * 3, lead_time_days=10
    )
    assert suggestion.quantity == 3


def test_a_zero_lead_time_orders_just_the_safety_stock_above_the_point():
    assert _suggest(lead_time_days=0).quantity == 5


def test_a_date_beyond_the_calendar_is_none_but_the_quantity_stands():
    # given: a trickle of demand against a billion units
    suggestion = _suggest(available=1_000_000_000, demand=1e-6, lead_time_days=7)

    # then
    assert (suggestion.quantity, suggestion.date) == (6, None)


def test_negative_demand_or_lead_time_is_refused():
    with pytest.raises(ValueError):
        _suggest(demand=-1)
    with pytest.raises(ValueError):
        _suggest(lead_time_days=-1)
