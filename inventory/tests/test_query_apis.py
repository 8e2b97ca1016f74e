"""The stock read API: levels, a sku's overview with its projected totals, the stock ledger
as JSON pages and CSV, low stock and the demand forecast."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import Resolver404, resolve
from django.utils import timezone
from rest_framework.test import APIClient

from history.models import AccessLogEntry, StockLedgerEntry
from history.projector import projections_run
from inventory.query_urls import RESERVED_STOCK_PATHS
from inventory.services import (
    location_create,
    reservation_confirm,
    reservation_create,
    stock_adjust,
    stock_issue,
    stock_receive,
    stock_set_thresholds,
    transfer_create,
)
from tests.audits import coded
from tests.factories import ProductFactory
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db

STOCK = "/api/v1/stock/"
HISTORY = "/api/v1/stock/history/"
LOW = "/api/v1/stock/low/"
CSV_HEADER = [
    "id",
    "event_id",
    "sku",
    "location_code",
    "movement",
    "version",
    "delta_on_hand",
    "delta_reserved",
    "delta_in_transit",
    "delta_backorder",
    "on_hand_after",
    "reserved_after",
    "in_transit_after",
    "backorder_after",
    "reference_type",
    "reference_id",
    "actor",
    "source",
    "reason",
    "reason_code",
    "occurred_at",
    "correlation_id",
    "idempotency_key",
    "prev_hash",
    "hash",
]


def field_errors(response) -> set[str]:
    return {error["attr"] for error in assert_problem(response, 400, "validation_error")["errors"]}


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8")
    reader = csv.reader(io.StringIO(text))
    assert next(reader) == CSV_HEADER
    return [dict(zip(CSV_HEADER, row, strict=True)) for row in reader]


@pytest.fixture
def places(db):
    return (
        location_create(code="MAIN", name="Main warehouse", priority=10),
        location_create(code="STORE", name="Corner store", type="store", priority=20),
    )


@pytest.fixture
def stocked(places, audit):
    """TRK-1: MAIN 100 received, 30 issued, 5 reserved (on_hand 70, available 65), reorder
    point 20 / safety 10; STORE 4 received, reorder point 5 / safety 2 (low).
    TRK-2: MAIN 10 received, reorder point 10 (low, at the point)."""
    widget = ProductFactory(sku="TRK-1", name="Widget", track_inventory=True)
    bolt = ProductFactory(sku="TRK-2", name="Bolt", track_inventory=True)
    stock_receive(sku="TRK-1", location="MAIN", quantity=100, audit=audit)
    stock_issue(sku="TRK-1", location="MAIN", quantity=30, audit=audit)
    reservation_create(sku="TRK-1", quantity=5, location="MAIN", audit=audit)
    stock_receive(sku="TRK-1", location="STORE", quantity=4, audit=audit)
    stock_set_thresholds(
        sku="TRK-1", location="MAIN", reorder_point=20, safety_stock=10, audit=audit
    )
    stock_set_thresholds(
        sku="TRK-1", location="STORE", reorder_point=5, safety_stock=2, audit=audit
    )
    stock_receive(sku="TRK-2", location="MAIN", quantity=10, audit=audit)
    stock_set_thresholds(
        sku="TRK-2", location="MAIN", reorder_point=10, safety_stock=0, audit=audit
    )
    return widget, bolt


# --- GET /stock/ ---------------------------------------------------------------------------


def test_stock_list_shows_every_level_with_its_quantities(api, stocked):
    # when
    response = api.get(STOCK)

    # then
    assert response.status_code == 200
    rows = {(r["sku"], r["location"]): r for r in response.json()["results"]}
    assert set(rows) == {("TRK-1", "MAIN"), ("TRK-1", "STORE"), ("TRK-2", "MAIN")}
    main = rows[("TRK-1", "MAIN")]
    assert set(main) == {
        "sku",
        "location",
        "on_hand",
        "reserved",
        "available",
        "in_transit",
        "backorder",
        "reorder_point",
        "safety_stock",
        "is_low",
        "version",
        "updated_at",
    }
    numbers = ("on_hand", "reserved", "available", "in_transit", "backorder", "version")
    assert [main[n] for n in numbers] == [70, 5, 65, 0, 0, 3]
    assert (main["reorder_point"], main["safety_stock"], main["is_low"]) == (20, 10, False)
    assert rows[("TRK-1", "STORE")]["is_low"] is True


def test_stock_list_filters_by_sku_and_location(api, stocked):
    # when
    by_sku = api.get(STOCK, {"sku": "TRK-1"})
    by_place = api.get(STOCK, {"location": "MAIN"})
    both = api.get(STOCK, {"sku": "TRK-1", "location": "STORE"})
    unknown = api.get(STOCK, {"sku": "NOPE"})

    # then
    def places(response):
        return sorted((r["sku"], r["location"]) for r in response.json()["results"])

    assert places(by_sku) == [("TRK-1", "MAIN"), ("TRK-1", "STORE")]
    assert places(by_place) == [("TRK-1", "MAIN"), ("TRK-2", "MAIN")]
    assert places(both) == [("TRK-1", "STORE")]
    assert places(unknown) == []


def test_stock_list_pages_with_a_cursor(api, stocked):
    # when
    first = api.get(STOCK, {"page_size": 2}).json()
    second = api.get(first["next"]).json()

    # then
    assert len(first["results"]) == 2
    assert len(second["results"]) == 1
    assert second["next"] is None


def test_stock_list_query_count_does_not_grow_with_the_rows(
    api, places, audit, django_assert_max_num_queries
):
    # given: 20 levels
    for n in range(10):
        ProductFactory(sku=f"Q-{n}", track_inventory=True)
        for code in ("MAIN", "STORE"):
            stock_receive(sku=f"Q-{n}", location=code, quantity=n + 1, audit=audit)

    # when
    with django_assert_max_num_queries(3):
        response = api.get(STOCK)

    # then
    assert len(response.json()["results"]) == 20


# --- GET /stock/{sku}/ ---------------------------------------------------------------------


def test_stock_detail_404_for_an_unknown_sku(api, db):
    assert_problem(api.get(f"{STOCK}NOPE/"), 404, "not_found")


def test_stock_detail_lists_levels_by_location_priority(api, stocked):
    # when
    response = api.get(f"{STOCK}TRK-1/")

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["sku"], body["name"]) == ("TRK-1", "Widget")
    levels = [(lv["location"], lv["on_hand"], lv["available"]) for lv in body["levels"]]
    assert levels == [("MAIN", 70, 65), ("STORE", 4, 4)]
    assert "sku" not in body["levels"][0]


@pytest.mark.django_db(transaction=True)
def test_stock_detail_reads_totals_from_the_projection_and_says_when_it_lags(
    api_client_for, places, audit
):
    # given: two movements folded into the totals, then one more that is not yet
    api = api_client_for("auditor")
    ProductFactory(sku="TRK-1", track_inventory=True)
    stock_receive(sku="TRK-1", location="MAIN", quantity=10, audit=audit)
    transfer_create(sku="TRK-1", from_location="MAIN", to_location="STORE", quantity=4, audit=audit)
    projections_run()
    folded_at = StockLedgerEntry.objects.order_by("-id").first().occurred_at
    stock_receive(sku="TRK-1", location="STORE", quantity=1, audit=audit)

    # when
    lagging = api.get(f"{STOCK}TRK-1/").json()
    projections_run()
    current = api.get(f"{STOCK}TRK-1/").json()

    # then
    assert lagging["totals"] == {
        "on_hand": 6,
        "reserved": 0,
        "available": 6,
        "in_transit": 4,
        "backorder": 0,
        "movements": 3,
        "last_updated": lagging["totals_as_of"],
    }
    assert lagging["totals_as_of"] == folded_at.isoformat().replace("+00:00", "Z")
    assert (lagging["totals_lagging"], lagging["totals_pending_movements"]) == (True, 1)
    assert (current["totals"]["on_hand"], current["totals"]["movements"]) == (7, 4)
    assert (current["totals_lagging"], current["totals_pending_movements"]) == (False, 0)


def test_stock_detail_of_a_product_never_moved_has_zero_totals(api, db):
    # given
    ProductFactory(sku="NEW-1", track_inventory=True)

    # when
    body = api.get(f"{STOCK}NEW-1/").json()

    # then
    assert body["levels"] == []
    assert body["totals"]["on_hand"] == 0
    assert (body["totals_as_of"], body["totals_lagging"]) == (None, False)


def test_stock_detail_query_count_is_fixed(api, stocked, django_assert_max_num_queries):
    with django_assert_max_num_queries(5):
        assert api.get(f"{STOCK}TRK-1/").status_code == 200


@pytest.mark.parametrize("word", RESERVED_STOCK_PATHS)
def test_command_paths_are_not_taken_for_a_sku(word):
    try:
        match = resolve(f"/api/v1/stock/{word}/")
    except Resolver404:
        return
    assert match.url_name != "stock-detail"


# --- GET /stock/history/ -------------------------------------------------------------------


def test_history_lists_the_stock_ledger_oldest_first(api, stocked):
    # when
    response = api.get(HISTORY, {"sku": "TRK-1", "location": "MAIN"})

    # then
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [
        (
            r["movement"],
            r["version"],
            r["delta_on_hand"],
            r["delta_reserved"],
            r["on_hand_after"],
            r["reserved_after"],
            r["available_after"],
        )
        for r in rows
    ] == [
        ("receive", 1, 100, 0, 100, 0, 100),
        ("issue", 2, -30, 0, 70, 0, 70),
        ("reserve", 3, 0, 5, 70, 5, 65),
    ]
    assert (rows[0]["sku"], rows[0]["location"], rows[0]["actor"]) == ("TRK-1", "MAIN", "tester")
    assert rows[2]["reference_type"] == "reservation"


def test_history_filters_by_movement_reference_and_time(api, stocked):
    # given
    reserve = StockLedgerEntry.objects.get(movement="reserve")
    first = StockLedgerEntry.objects.order_by("id").first()

    # when
    receipts = api.get(HISTORY, {"movement": "receive"}).json()["results"]
    by_reference = api.get(
        HISTORY, {"reference_type": "reservation", "reference_id": reserve.reference_id}
    ).json()["results"]
    later = api.get(
        HISTORY, {"since": (first.occurred_at + timedelta(microseconds=1)).isoformat()}
    ).json()["results"]
    before = api.get(HISTORY, {"until": first.occurred_at.isoformat()}).json()["results"]

    # then
    assert [(r["sku"], r["location"]) for r in receipts] == [
        ("TRK-1", "MAIN"),
        ("TRK-1", "STORE"),
        ("TRK-2", "MAIN"),
    ]
    assert [r["event_id"] for r in by_reference] == [str(reserve.event_id)]
    assert len(later) == 4
    assert before == []


def test_history_csv_neutralises_formulas_in_text_but_keeps_negative_deltas(api, places):
    # given: movements whose reasons and keys a spreadsheet would run as formulas
    ProductFactory(sku="TRK-9", name="Widget", track_inventory=True)
    for path, body, key in [
        ("receive/", {"quantity": 10, "reason": '=HYPERLINK("http://x","y")'}, "@SUM(1)"),
        ("adjust/", {"delta": -5, "reason": "@SUM(1)", "reason_code": "damaged"}, "-2"),
    ]:
        response = api.post(
            f"{STOCK}{path}",
            {"sku": "TRK-9", "location": "MAIN", **body},
            format="json",
            HTTP_IDEMPOTENCY_KEY=key,
        )
        assert response.status_code == 200, response.content

    # when
    rows = csv_rows(api.get(HISTORY, {"format": "csv", "sku": "TRK-9"}))

    # then
    assert [
        (r["delta_on_hand"], r["on_hand_after"], r["reason"], r["idempotency_key"]) for r in rows
    ] == [
        ("10", "10", '\'=HYPERLINK("http://x","y")', "'@SUM(1)"),
        ("-5", "5", "'@SUM(1)", "'-2"),
    ]
    assert [r["reason_code"] for r in rows] == ["unspecified", "damaged"]


def test_history_filters_by_reason_code_and_refuses_unknown_ones(api, stocked, audit):
    # given: the fixture's movements were recorded as `system`
    stock_adjust(sku="TRK-1", location="MAIN", delta=-1, audit=coded(audit, "damaged"))
    stock_adjust(sku="TRK-2", location="MAIN", delta=2, audit=coded(audit, "found"))

    # when
    both = api.get(HISTORY, {"reason_code": "damaged,found"})
    repeated = api.get(HISTORY, {"reason_code": ["found", "damaged"]})
    exported = csv_rows(api.get(HISTORY, {"format": "csv", "reason_code": "found"}))
    unknown = api.get(HISTORY, {"reason_code": "nope"})
    empty = api.get(HISTORY, {"reason_code": ""})

    # then
    assert [(r["sku"], r["reason_code"]) for r in both.json()["results"]] == [
        ("TRK-1", "damaged"),
        ("TRK-2", "found"),
    ]
    assert repeated.json()["results"] == both.json()["results"]
    assert [(r["sku"], r["reason_code"]) for r in exported] == [("TRK-2", "found")]
    assert field_errors(unknown) == {"reason_code"}
    assert field_errors(empty) == {"reason_code"}


def test_history_refuses_naive_times_and_unknown_movements(api, db):
    assert field_errors(api.get(HISTORY, {"since": "2026-01-01T00:00:00"})) == {"since"}
    assert field_errors(api.get(HISTORY, {"until": "yesterday"})) == {"until"}
    assert field_errors(api.get(HISTORY, {"movement": "teleport"})) == {"movement"}


def test_history_streams_csv_with_every_matching_row(api, stocked):
    # when
    rows = csv_rows(api.get(HISTORY, {"format": "csv", "sku": "TRK-1", "location": "MAIN"}))

    # then
    assert [
        (r["movement"], r["version"], r["delta_on_hand"], r["on_hand_after"], r["reserved_after"])
        for r in rows
    ] == [
        ("receive", "1", "100", "100", "0"),
        ("issue", "2", "-30", "70", "0"),
        ("reserve", "3", "0", "70", "5"),
    ]
    entry = StockLedgerEntry.objects.order_by("id").first()
    assert rows[0]["event_id"] == str(entry.event_id)
    assert rows[0]["occurred_at"] == entry.occurred_at.isoformat()
    assert (rows[0]["sku"], rows[0]["location_code"], rows[0]["actor"]) == (
        "TRK-1",
        "MAIN",
        "tester",
    )


def test_history_csv_with_a_bad_filter_is_a_json_problem(api, db):
    assert field_errors(api.get(HISTORY, {"format": "csv", "since": "2026-01-01"})) == {"since"}


def test_history_csv_export_is_recorded_with_its_filters_and_rows(api_client_for, stocked):
    # given
    auditor = api_client_for("auditor")

    # when
    response = auditor.get(HISTORY, {"format": "csv", "sku": "TRK-1", "location": "MAIN"})
    b"".join(response.streaming_content)

    # then
    entry = AccessLogEntry.objects.get()
    assert (entry.actor, entry.action, entry.target) == (
        auditor.user.username,
        "export_stock_history",
        "stock TRK-1@MAIN",
    )
    assert (entry.filters, entry.rows) == ({"sku": "TRK-1", "location": "MAIN"}, 3)


def test_history_query_count_does_not_grow_with_the_rows(
    api, stocked, audit, django_assert_max_num_queries
):
    # given
    for _ in range(20):
        stock_receive(sku="TRK-2", location="STORE", quantity=1, audit=audit)

    # when: the page's outbox events are one of them (history.selectors.event_deliveries)
    with django_assert_max_num_queries(4):
        response = api.get(HISTORY)

    # then
    assert len(response.json()["results"]) == 25


# --- GET /stock/low/ -----------------------------------------------------------------------


def test_low_lists_levels_at_or_below_their_reorder_point(api, stocked, audit):
    # given: a level that rises above its point is no longer low
    stock_set_thresholds(
        sku="TRK-2", location="STORE", reorder_point=3, safety_stock=1, audit=audit
    )
    stock_receive(sku="TRK-2", location="STORE", quantity=4, audit=audit)

    # when
    response = api.get(LOW)

    # then
    assert response.status_code == 200
    assert sorted(
        (r["sku"], r["location"], r["available"], r["reorder_point"], r["safety_stock"])
        for r in response.json()["results"]
    ) == [("TRK-1", "STORE", 4, 5, 2), ("TRK-2", "MAIN", 10, 10, 0)]


def test_low_query_count_is_fixed(api, stocked, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        assert len(api.get(LOW).json()["results"]) == 2


# --- GET /stock/{sku}/forecast/ --------------------------------------------------------------


@pytest.fixture
def demand_history(places, audit, monkeypatch):
    """TRK-1 over the last four days (today last): issued 6; nothing (an adjustment and a
    transfer are not demand); a reservation of 4 consumed plus 2 issued at STORE; 8 issued.
    40 days ago: 50 issued (outside even the default window).
    Stock now: MAIN 80, STORE 8 and 1 in transit (available 88); reorder points 20 + 5,
    safety stock 10 + 2."""
    ProductFactory(sku="TRK-1", track_inventory=True)
    now = timezone.now()

    def on(days_ago: int):
        monkeypatch.setattr(timezone, "now", lambda: now - timedelta(days=days_ago))

    on(40)
    stock_receive(sku="TRK-1", location="MAIN", quantity=100, audit=audit)
    stock_receive(sku="TRK-1", location="STORE", quantity=10, audit=audit)
    stock_issue(sku="TRK-1", location="MAIN", quantity=50, audit=audit)
    stock_receive(sku="TRK-1", location="MAIN", quantity=50, audit=audit)
    on(3)
    stock_issue(sku="TRK-1", location="MAIN", quantity=6, audit=audit)
    on(2)
    stock_adjust(sku="TRK-1", location="MAIN", delta=-1, audit=coded(audit))
    transfer_create(sku="TRK-1", from_location="MAIN", to_location="STORE", quantity=1, audit=audit)
    on(1)
    reservation = reservation_create(sku="TRK-1", quantity=4, location="MAIN", audit=audit)
    reservation_confirm(reservation_id=reservation.pk, audit=audit)
    stock_issue(sku="TRK-1", location="STORE", quantity=2, audit=audit)
    monkeypatch.setattr(timezone, "now", lambda: now)
    stock_issue(sku="TRK-1", location="MAIN", quantity=8, audit=audit)
    stock_set_thresholds(
        sku="TRK-1", location="MAIN", reorder_point=20, safety_stock=10, audit=audit
    )
    stock_set_thresholds(
        sku="TRK-1", location="STORE", reorder_point=5, safety_stock=2, audit=audit
    )
    monkeypatch.undo()
    return now.date()


def test_forecast_smooths_daily_demand_and_suggests_a_reorder(api, demand_history):
    # given
    today = demand_history

    # when
    response = api.get(f"{STOCK}TRK-1/forecast/", {"days": 4, "alpha": 0.5, "lead_time_days": 2})

    # then: series 6, 0, 6, 8 -> s = 6, 3, 4.5, 6.25; mean 5
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["series"] == [
        {"date": (today - timedelta(days=3)).isoformat(), "demand": 6},
        {"date": (today - timedelta(days=2)).isoformat(), "demand": 0},
        {"date": (today - timedelta(days=1)).isoformat(), "demand": 6},
        {"date": today.isoformat(), "demand": 8},
    ]
    assert (body["days"], body["alpha"], body["lead_time_days"]) == (4, 0.5, 2)
    assert (body["average_daily_demand"], body["smoothed_daily_demand"]) == (5.0, 6.25)
    assert (body["on_hand"], body["reserved"], body["available"]) == (88, 0, 88)
    assert (body["reorder_point"], body["safety_stock"]) == (25, 12)
    # 88 / 6.25
    assert body["days_of_cover"] == 14.08
    # (88 - 25) / 6.25 = 10.08 -> in 10 days; 25 + 12 + 6.25 * 2 - 25 = 24.5 -> 25
    assert body["reorder_quantity"] == 25
    assert body["reorder_date"] == (today + timedelta(days=10)).isoformat()


def test_forecast_defaults_to_28_days_and_alpha_0_3(api, demand_history):
    # when
    body = api.get(f"{STOCK}TRK-1/forecast/").json()

    # then
    assert (body["days"], body["alpha"], body["lead_time_days"]) == (28, 0.3, 7)
    assert len(body["series"]) == 28
    assert body["series"][-1] == {"date": demand_history.isoformat(), "demand": 8}
    assert sum(day["demand"] for day in body["series"]) == 20
    assert body["average_daily_demand"] == round(20 / 28, 4)


def test_forecast_counts_the_backordered_part_of_an_issue(api, places, audit):
    # given: 3 on hand, 5 issued -> 2 backordered
    ProductFactory(sku="BO-1", track_inventory=True, allow_backorder=True)
    stock_receive(sku="BO-1", location="MAIN", quantity=3, audit=audit)
    stock_issue(sku="BO-1", location="MAIN", quantity=5, audit=audit)

    # when
    body = api.get(f"{STOCK}BO-1/forecast/", {"days": 1}).json()

    # then
    assert body["series"][0]["demand"] == 5
    assert (body["smoothed_daily_demand"], body["available"], body["days_of_cover"]) == (
        5.0,
        0,
        0.0,
    )
    assert (body["reorder_quantity"], body["reorder_date"]) == (35, body["series"][0]["date"])


def test_forecast_without_demand_has_no_cover_limit_and_no_reorder(api, places, audit):
    # given
    ProductFactory(sku="IDLE-1", track_inventory=True)
    stock_receive(sku="IDLE-1", location="MAIN", quantity=50, audit=audit)

    # when
    body = api.get(f"{STOCK}IDLE-1/forecast/").json()

    # then
    assert body["smoothed_daily_demand"] == 0.0
    assert body["days_of_cover"] is None
    assert (body["reorder_quantity"], body["reorder_date"]) == (0, None)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"days": 0}, "days"),
        ({"days": 366}, "days"),
        ({"days": "many"}, "days"),
        ({"alpha": 0}, "alpha"),
        ({"alpha": -0.5}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": "high"}, "alpha"),
        ({"lead_time_days": -1}, "lead_time_days"),
        ({"lead_time_days": 366}, "lead_time_days"),
    ],
)
def test_forecast_refuses_parameters_out_of_range(api, stocked, params, field):
    assert field_errors(api.get(f"{STOCK}TRK-1/forecast/", params)) == {field}


def test_forecast_accepts_alpha_one(api, stocked):
    assert api.get(f"{STOCK}TRK-1/forecast/", {"alpha": 1}).status_code == 200


def test_forecast_404_for_an_unknown_sku(api, db):
    assert_problem(api.get(f"{STOCK}NOPE/forecast/"), 404, "not_found")


def test_forecast_query_count_is_fixed(api, stocked, django_assert_max_num_queries):
    with django_assert_max_num_queries(5):
        assert api.get(f"{STOCK}TRK-1/forecast/").status_code == 200


# --- Roles ---------------------------------------------------------------------------------

READ_URLS = [
    STOCK,
    f"{STOCK}?sku=TRK-1",
    f"{STOCK}TRK-1/",
    HISTORY,
    f"{HISTORY}?format=csv",
    LOW,
    f"{STOCK}TRK-1/forecast/",
]


@pytest.mark.parametrize("role", ["auditor", "integrator", "order_staff"])
@pytest.mark.parametrize("url", READ_URLS)
def test_every_role_can_read_stock(api_client_for, stocked, role, url):
    assert api_client_for(role).get(url).status_code == 200


@pytest.mark.parametrize("url", READ_URLS)
def test_anonymous_callers_get_401(stocked, url):
    assert_problem(APIClient().get(url), 401, "not_authenticated")


@pytest.mark.parametrize("url", READ_URLS)
def test_a_user_without_a_role_gets_403(api_client_for, stocked, url):
    assert_problem(api_client_for(None).get(url), 403, "permission_denied")
