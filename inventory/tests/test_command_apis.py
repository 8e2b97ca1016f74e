"""The inventory command API: locations, stock receive/issue/adjust/count/thresholds,
transfers and reservations. Happy paths with exact numbers, ledger rows and events; bad
input that must write nothing; conflicts as 409 problems with the numbers that explain
them."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from history.models import OutboxEvent, StockLedgerEntry
from inventory.models import (
    Location,
    Product,
    Reservation,
    ReservationAllocation,
    StockLevel,
    Transfer,
)
from inventory.services import location_create, stock_receive
from tests.factories import ProductFactory
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db

LOCATIONS = "/api/v1/locations/"
PRODUCTS = "/api/v1/products/"
STOCK = "/api/v1/stock/"
TRANSFERS = "/api/v1/transfers/"
RESERVATIONS = "/api/v1/reservations/"


@pytest.fixture
def tracked(db):
    return ProductFactory(sku="TRK-1", name="Tracked", track_inventory=True)


@pytest.fixture
def main(db):
    return location_create(code="WH-1", name="Main warehouse", priority=10)


@pytest.fixture
def store(db):
    return location_create(code="ST-1", name="Corner store", type="store", priority=20)


@pytest.fixture
def closed(db):
    return location_create(code="OLD-1", name="Closed depot", active=False)


@pytest.fixture
def stocked(tracked, main, store, closed, audit):
    """TRK-1 with 10 on hand at WH-1 (priority 10); ST-1 (priority 20) and OLD-1
    (inactive) exist but hold nothing."""
    stock_receive(sku="TRK-1", location="WH-1", quantity=10, audit=audit)
    return tracked


def counts() -> dict[str, int]:
    models = (
        Product,
        Location,
        StockLevel,
        StockLedgerEntry,
        OutboxEvent,
        Reservation,
        ReservationAllocation,
        Transfer,
    )
    snapshot = {model.__name__: model.objects.count() for model in models}
    snapshot["stock"] = [
        (lv.on_hand, lv.reserved, lv.in_transit, lv.backorder, lv.version, lv.reorder_point)
        for lv in StockLevel.objects.order_by("pk")
    ]
    return snapshot


def numbers(code: str, sku: str = "TRK-1") -> tuple[int, int, int, int, int]:
    """(on_hand, reserved, available, in_transit, backorder) of one stock level."""
    level = StockLevel.objects.get(product__sku=sku, location__code=code)
    return level.on_hand, level.reserved, level.available, level.in_transit, level.backorder


def event_types(after_id: int = 0) -> list[str]:
    return list(
        OutboxEvent.objects.filter(id__gt=after_id)
        .order_by("id")
        .values_list("event_type", flat=True)
    )


def last_event_id() -> int:
    return OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def ledger_rows(after_id: int = 0) -> list[tuple]:
    return list(
        StockLedgerEntry.objects.filter(id__gt=after_id)
        .order_by("id")
        .values_list(
            "location_code",
            "movement",
            "delta_on_hand",
            "delta_reserved",
            "delta_in_transit",
            "delta_backorder",
            "on_hand_after",
            "reserved_after",
            "version",
        )
    )


def last_ledger_id() -> int:
    return StockLedgerEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


def assert_field_error(body: dict, attr: str, code: str | None = None) -> dict:
    assert body["code"] == "validation_error"
    matching = [error for error in body["errors"] if error["attr"] == attr]
    assert matching, body["errors"]
    error = matching[0]
    assert error["pointer"] == ("#/" if attr == "non_field_errors" else "#/" + attr)
    if code is not None:
        assert error["code"] == code
    return error


def post(api, path: str, body, **headers):
    return api.post(path, body, format="json", **headers)


def receive(api, quantity: int, location: str = "WH-1", sku: str = "TRK-1", **headers):
    body = {"sku": sku, "location": location, "quantity": quantity, "reason": "delivery"}
    return post(api, f"{STOCK}receive/", body, **headers)


# --- Locations ------------------------------------------------------------------------------


def test_create_location_returns_201_with_every_field(api):
    # given
    body = {
        "code": "WH-NORTH.2",
        "name": "North warehouse",
        "type": "warehouse",
        "address": "1 Dock Road",
        "active": True,
        "priority": 5,
    }

    # when
    response = post(api, LOCATIONS, body)

    # then
    assert response.status_code == 201, response.content
    data = response.json()
    location = Location.objects.get()
    assert data["id"] == location.pk
    assert {k: data[k] for k in body} == body
    assert data["created_at"]
    assert response["Location"] == "/api/v1/locations/WH-NORTH.2/"
    assert (location.code, location.priority, location.address) == ("WH-NORTH.2", 5, "1 Dock Road")


def test_create_location_defaults(api):
    # when
    response = post(api, LOCATIONS, {"code": "S-1", "name": "Shop"})

    # then
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["type"], data["active"], data["priority"], data["address"]) == (
        "warehouse",
        True,
        100,
        "",
    )


def test_duplicate_location_code_is_400_and_keeps_the_original(api, main):
    # given
    before = counts()

    # when
    response = post(api, LOCATIONS, {"code": "WH-1", "name": "Impostor"})

    # then
    body = assert_problem(response, 400, "validation_error")
    error = assert_field_error(body, "code")
    assert "already exists" in error["detail"]
    assert counts() == before
    assert Location.objects.get(code="WH-1").name == "Main warehouse"


@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        pytest.param({"name": "No code"}, "code", "required", id="missing-code"),
        pytest.param({"code": "-X", "name": "N"}, "code", "invalid", id="code-pattern"),
        pytest.param({"code": "has space", "name": "N"}, "code", "invalid", id="code-space"),
        pytest.param({"code": "X" * 33, "name": "N"}, "code", "max_length", id="code-too-long"),
        pytest.param({"code": "X-1"}, "name", "required", id="missing-name"),
        pytest.param({"code": "X-1", "name": ""}, "name", "blank", id="blank-name"),
        pytest.param({"code": "X-1", "name": "N", "type": "depot"}, "type", "invalid_choice"),
        pytest.param({"code": "X-1", "name": "N", "priority": -1}, "priority", "min_value"),
        pytest.param({"code": "X-1", "name": "N", "priority": "5"}, "priority", "invalid"),
        pytest.param({"code": "X-1", "name": "N", "priority": 1.5}, "priority", "invalid"),
        pytest.param({"code": "X-1", "name": "N", "priority": 10**7}, "priority", "max_value"),
        pytest.param({"code": "X-1", "name": "N", "active": "perhaps"}, "active", "invalid"),
        pytest.param({"code": "X-1", "name": "N", "zone": "A"}, "zone", "unknown_field"),
    ],
)
def test_create_location_refuses_bad_input_and_writes_nothing(api, body, attr, code):
    # given
    before = counts()

    # when
    response = post(api, LOCATIONS, body)

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, attr, code)
    assert counts() == before


def test_list_locations_newest_first_and_filter_by_active_and_type(api, main, store, closed):
    # when
    everything = api.get(LOCATIONS)
    inactive = api.get(LOCATIONS, {"active": "false"})
    active_stores = api.get(LOCATIONS, {"active": "true", "type": "store"})
    warehouses = api.get(LOCATIONS, {"type": "warehouse"})

    # then
    assert [loc["code"] for loc in everything.json()["results"]] == ["OLD-1", "ST-1", "WH-1"]
    assert [loc["code"] for loc in inactive.json()["results"]] == ["OLD-1"]
    assert [loc["code"] for loc in active_stores.json()["results"]] == ["ST-1"]
    assert [loc["code"] for loc in warehouses.json()["results"]] == ["OLD-1", "WH-1"]


@pytest.mark.parametrize(("param", "value"), [("active", "maybe"), ("type", "depot")])
def test_list_locations_refuses_bad_filter_values(api, main, param, value):
    # when
    response = api.get(LOCATIONS, {param: value})

    # then
    body = assert_problem(response, 400, "validation_error")
    assert_field_error(body, param, "invalid_choice")


def test_list_locations_walks_pages_with_a_cursor(api):
    # given
    for n in range(5):
        location_create(code=f"L-{n}", name=f"Location {n}")

    # when
    seen, url, params = [], LOCATIONS, {"page_size": 2}
    while url:
        page = api.get(url, params).json()
        seen += [loc["code"] for loc in page["results"]]
        url, params = page["next"], None

    # then
    assert seen == ["L-4", "L-3", "L-2", "L-1", "L-0"]


def test_location_detail_by_code_and_unknown_is_404(api, main):
    # when
    found = api.get(f"{LOCATIONS}WH-1/")
    missing = api.get(f"{LOCATIONS}NOPE-1/")

    # then
    assert found.status_code == 200
    assert (found.json()["id"], found.json()["name"]) == (main.pk, "Main warehouse")
    body = assert_problem(missing, 404, "not_found")
    assert "NOPE-1" in body["detail"]


# --- Products allow backorders --------------------------------------------------------------


def test_create_product_with_allow_backorder(api):
    # when
    with_backorder = post(
        api, PRODUCTS, {"sku": "PRE-1", "name": "Preorder", "allow_backorder": True}
    )
    without = post(api, PRODUCTS, {"sku": "REG-1", "name": "Regular"})

    # then
    assert with_backorder.status_code == 201, with_backorder.content
    assert with_backorder.json()["allow_backorder"] is True
    assert Product.objects.get(sku="PRE-1").allow_backorder is True
    assert without.json()["allow_backorder"] is False
    assert api.get(f"{PRODUCTS}PRE-1/").json()["allow_backorder"] is True


def test_create_product_refuses_a_non_boolean_allow_backorder(api):
    # when
    response = post(api, PRODUCTS, {"sku": "PRE-1", "name": "P", "allow_backorder": "often"})

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, "allow_backorder", "invalid")
    assert Product.objects.count() == 0


# --- Stock at one place ---------------------------------------------------------------------


def test_receive_returns_the_level_with_etag_and_writes_a_ledger_row_and_event(api, tracked, main):
    # when
    response = receive(api, 10)

    # then
    assert response.status_code == 200, response.content
    assert response.json() == {
        "sku": "TRK-1",
        "location": "WH-1",
        "on_hand": 10,
        "reserved": 0,
        "available": 10,
        "in_transit": 0,
        "backorder": 0,
        "reorder_point": 0,
        "safety_stock": 0,
        "version": 1,
        "is_low": False,
    }
    assert response["ETag"] == '"1"'
    assert numbers("WH-1") == (10, 0, 10, 0, 0)
    entry = StockLedgerEntry.objects.get()
    assert (entry.sku, entry.location_code, entry.movement, entry.delta_on_hand) == (
        "TRK-1",
        "WH-1",
        "receive",
        10,
    )
    assert (entry.on_hand_after, entry.version) == (10, 1)
    assert (entry.actor, entry.source, entry.reason) == (api.user.username, "api", "delivery")
    assert event_types() == ["stock.received"]
    assert OutboxEvent.objects.get().event_id == entry.event_id


def test_receive_again_adds_up_and_the_etag_follows_the_version(api, tracked, main):
    # given
    receive(api, 10)

    # when
    response = receive(api, 5)

    # then
    assert response.json()["on_hand"] == 15
    assert response.json()["version"] == 2
    assert response["ETag"] == '"2"'
    assert [row[6] for row in ledger_rows()] == [10, 15]


def test_every_movement_moves_the_level_updated_at(api, tracked, main):
    # given
    receive(api, 10)
    first = StockLevel.objects.get().updated_at

    # when
    receive(api, 1)

    # then
    level = StockLevel.objects.get()
    assert level.version == 2
    assert level.updated_at > first
    assert level.updated_at == StockLedgerEntry.objects.order_by("-id").first().occurred_at


def test_issue_takes_available_stock(api, stocked):
    # given
    ledger_mark, event_mark = last_ledger_id(), last_event_id()

    # when
    response = post(
        api, f"{STOCK}issue/", {"sku": "TRK-1", "location": "WH-1", "quantity": 3, "reason": "sold"}
    )

    # then
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["on_hand"], data["reserved"], data["available"], data["version"]) == (7, 0, 7, 2)
    assert numbers("WH-1") == (7, 0, 7, 0, 0)
    assert ledger_rows(ledger_mark) == [("WH-1", "issue", -3, 0, 0, 0, 7, 0, 2)]
    assert event_types(event_mark) == ["stock.issued"]


def test_issue_beyond_available_is_409_with_available_and_writes_nothing(api, stocked):
    # given: 10 on hand, 4 of them reserved
    post(api, RESERVATIONS, {"sku": "TRK-1", "quantity": 4, "location": "WH-1"})
    before = counts()

    # when
    response = post(
        api, f"{STOCK}issue/", {"sku": "TRK-1", "location": "WH-1", "quantity": 7, "reason": "r"}
    )

    # then
    body = assert_problem(response, 409, "insufficient_stock")
    assert (body["available"], body["requested"], body["sku"], body["location"]) == (
        6,
        7,
        "TRK-1",
        "WH-1",
    )
    assert body["title"] == "Insufficient stock"
    assert counts() == before
    assert numbers("WH-1") == (10, 4, 6, 0, 0)


def test_issue_of_a_backorder_product_records_the_shortfall(api, main):
    # given
    ProductFactory(sku="PRE-1", track_inventory=True, allow_backorder=True)
    receive(api, 2, sku="PRE-1")

    # when
    response = post(
        api, f"{STOCK}issue/", {"sku": "PRE-1", "location": "WH-1", "quantity": 5, "reason": "r"}
    )

    # then
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["on_hand"], data["available"], data["backorder"]) == (0, 0, 3)
    assert numbers("WH-1", sku="PRE-1") == (0, 0, 0, 0, 3)


def test_adjust_up_and_down(api, stocked):
    # given
    ledger_mark, event_mark = last_ledger_id(), last_event_id()

    # when
    up = post(
        api,
        f"{STOCK}adjust/",
        {"sku": "TRK-1", "location": "WH-1", "delta": 5, "reason": "found", "reason_code": "found"},
    )
    down = post(
        api,
        f"{STOCK}adjust/",
        {
            "sku": "TRK-1",
            "location": "WH-1",
            "delta": -2,
            "reason": "damaged",
            "reason_code": "damaged",
        },
    )

    # then
    assert up.status_code == down.status_code == 200, (up.content, down.content)
    assert up.json()["on_hand"] == 15
    assert (down.json()["on_hand"], down.json()["available"], down.json()["version"]) == (13, 13, 3)
    assert ledger_rows(ledger_mark) == [
        ("WH-1", "adjust", 5, 0, 0, 0, 15, 0, 2),
        ("WH-1", "adjust", -2, 0, 0, 0, 13, 0, 3),
    ]
    assert StockLedgerEntry.objects.order_by("-id").first().reason == "damaged"
    assert event_types(event_mark) == ["stock.adjusted", "stock.adjusted"]


def test_adjust_below_available_is_409_and_writes_nothing(api, stocked):
    # given
    before = counts()

    # when
    response = post(
        api,
        f"{STOCK}adjust/",
        {"sku": "TRK-1", "location": "WH-1", "delta": -11, "reason_code": "lost", "reason": "r"},
    )

    # then
    body = assert_problem(response, 409, "insufficient_stock")
    assert (body["available"], body["requested"]) == (10, 11)
    assert counts() == before


def test_count_sets_on_hand_and_records_the_difference(api, stocked):
    # given
    ledger_mark, event_mark = last_ledger_id(), last_event_id()

    # when
    response = post(
        api,
        f"{STOCK}count/",
        {
            "sku": "TRK-1",
            "location": "WH-1",
            "counted": 4,
            "reason": "stocktake",
            "reason_code": "cycle_count",
        },
    )

    # then
    assert response.status_code == 200, response.content
    assert (response.json()["on_hand"], response.json()["version"]) == (4, 2)
    assert ledger_rows(ledger_mark) == [("WH-1", "count", -6, 0, 0, 0, 4, 0, 2)]
    assert event_types(event_mark) == ["stock.counted"]
    assert OutboxEvent.objects.get(event_type="stock.counted").payload["counted"] == 4


def test_count_that_matches_is_still_recorded(api, stocked):
    # given
    ledger_mark = last_ledger_id()

    # when
    response = post(
        api,
        f"{STOCK}count/",
        {
            "sku": "TRK-1",
            "location": "WH-1",
            "counted": 10,
            "reason": "ok",
            "reason_code": "cycle_count",
        },
    )

    # then
    assert response.status_code == 200
    assert (response.json()["on_hand"], response.json()["version"]) == (10, 2)
    assert ledger_rows(ledger_mark) == [("WH-1", "count", 0, 0, 0, 0, 10, 0, 2)]


def test_count_below_reserved_is_409_and_writes_nothing(api, stocked):
    # given
    post(api, RESERVATIONS, {"sku": "TRK-1", "quantity": 6, "location": "WH-1"})
    before = counts()

    # when
    response = post(
        api,
        f"{STOCK}count/",
        {
            "sku": "TRK-1",
            "location": "WH-1",
            "counted": 5,
            "reason": "r",
            "reason_code": "cycle_count",
        },
    )

    # then
    body = assert_problem(response, 409, "count_below_reserved")
    assert body["reserved"] == 6
    assert counts() == before


def test_thresholds_set_and_stock_low_fires_on_crossing(api, stocked):
    # given
    event_mark = last_event_id()

    # when
    thresholds = post(
        api,
        f"{STOCK}thresholds/",
        {"sku": "TRK-1", "location": "WH-1", "reorder_point": 8, "safety_stock": 2},
    )
    issued = post(
        api, f"{STOCK}issue/", {"sku": "TRK-1", "location": "WH-1", "quantity": 2, "reason": "r"}
    )

    # then
    assert thresholds.status_code == 200, thresholds.content
    assert thresholds.json()["reorder_point"] == 8
    assert thresholds.json()["safety_stock"] == 2
    assert thresholds.json()["is_low"] is False
    assert (issued.json()["available"], issued.json()["is_low"]) == (8, True)
    assert event_types(event_mark) == ["stock.issued", "stock.low"]
    low = OutboxEvent.objects.get(event_type="stock.low").payload
    assert (low["available"], low["reorder_point"], low["location"]) == (8, 8, "WH-1")


def test_thresholds_at_or_above_available_mark_the_level_low_at_once(api, stocked):
    # when
    response = post(
        api,
        f"{STOCK}thresholds/",
        {"sku": "TRK-1", "location": "WH-1", "reorder_point": 10, "safety_stock": 0},
    )

    # then
    assert response.json()["is_low"] is True
    assert StockLevel.objects.get().is_low is True
    assert "stock.low" in event_types()


def test_idempotent_replay_of_a_receive_writes_one_ledger_row(api, tracked, main):
    # given
    first = receive(api, 10, HTTP_IDEMPOTENCY_KEY="delivery-42")

    # when
    again = receive(api, 10, HTTP_IDEMPOTENCY_KEY="delivery-42")
    other = receive(api, 11, HTTP_IDEMPOTENCY_KEY="delivery-42")

    # then
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["ETag"] == first["ETag"] == '"1"'
    assert again["Idempotent-Replayed"] == "true"
    assert_problem(other, 422, "idempotency_key_reused")
    assert StockLedgerEntry.objects.count() == 1
    assert StockLedgerEntry.objects.get().idempotency_key == "delivery-42"
    assert numbers("WH-1") == (10, 0, 10, 0, 0)
    assert event_types() == ["stock.received"]


STOCK_COMMANDS = [
    ("receive", "quantity", 1),
    ("issue", "quantity", 1),
    ("adjust", "delta", 1),
    ("count", "counted", 1),
]


def _bad_stock_bodies():
    for command, field, ok in STOCK_COMMANDS:
        base = {
            "sku": "TRK-1",
            "location": "WH-1",
            field: ok,
            "reason": "r",
            "reason_code": "found",
        }
        cases = [
            ({**base, field: -(10**10)}, field, "min_value", "far-negative"),
            ({**base, field: 10**10}, field, "max_value", "huge"),
            ({**base, field: 1.5}, field, "invalid", "fractional"),
            ({**base, field: 2.0}, field, "invalid", "float-integral"),
            ({**base, field: "5"}, field, "invalid", "string-number"),
            ({**base, field: True}, field, "invalid", "boolean"),
            ({**base, field: None}, field, "null", "null"),
            ({k: v for k, v in base.items() if k != field}, field, "required", "missing-number"),
            ({k: v for k, v in base.items() if k != "reason"}, "reason", "required", "no-reason"),
            ({**base, "reason": ""}, "reason", "blank", "blank-reason"),
            ({**base, "reason": "x" * 501}, "reason", "max_length", "long-reason"),
            ({**base, "sku": "NOPE-1"}, "sku", "unknown_sku", "unknown-sku"),
            ({**base, "sku": ""}, "sku", "blank", "blank-sku"),
            ({**base, "location": "NOPE-1"}, "location", "unknown_location", "unknown-location"),
            ({**base, "location": "OLD-1"}, "location", "inactive_location", "inactive-location"),
            ({k: v for k, v in base.items() if k != "location"}, "location", "required", "no-loc"),
            ({**base, "qty": 1}, "qty", "unknown_field", "unknown-field"),
            ({**base, "reason_code": "nope"}, "reason_code", "invalid_choice", "unknown-code"),
            ({**base, "reason_code": "unspecified"}, "reason_code", "invalid_choice", "unspec"),
            ({**base, "reason_code": ""}, "reason_code", "invalid_choice", "blank-code"),
        ]
        if command in ("adjust", "count"):
            no_code = {k: v for k, v in base.items() if k != "reason_code"}
            cases.append((no_code, "reason_code", "reason_code_required", "no-reason-code"))
        if field in ("quantity", "delta"):
            cases.append(({**base, field: 0}, field, None, "zero"))
        if field == "quantity":
            cases.append(({**base, field: -1}, field, "min_value", "negative"))
        if field == "counted":
            cases.append(({**base, field: -1}, field, "min_value", "negative"))
        for body, attr, code, name in cases:
            yield pytest.param(command, body, attr, code, id=f"{command}-{name}")


@pytest.mark.parametrize(("command", "body", "attr", "code"), list(_bad_stock_bodies()))
def test_stock_commands_refuse_bad_input_and_write_nothing(api, stocked, command, body, attr, code):
    # given
    before = counts()

    # when
    response = post(api, f"{STOCK}{command}/", body)

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, attr, code)
    assert counts() == before


@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        (
            {"sku": "TRK-1", "location": "WH-1", "reorder_point": -1, "safety_stock": 0},
            "reorder_point",
            "min_value",
        ),
        (
            {"sku": "TRK-1", "location": "WH-1", "reorder_point": 1, "safety_stock": "2"},
            "safety_stock",
            "invalid",
        ),
        ({"sku": "TRK-1", "location": "WH-1", "reorder_point": 1}, "safety_stock", "required"),
        (
            {"sku": "NOPE-1", "location": "WH-1", "reorder_point": 1, "safety_stock": 0},
            "sku",
            "unknown_sku",
        ),
        (
            {"sku": "TRK-1", "location": "OLD-1", "reorder_point": 1, "safety_stock": 0},
            "location",
            "inactive_location",
        ),
    ],
)
def test_thresholds_refuse_bad_input_and_write_nothing(api, stocked, body, attr, code):
    # given
    before = counts()

    # when
    response = post(api, f"{STOCK}thresholds/", body)

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, attr, code)
    assert counts() == before


@pytest.mark.parametrize("command", ["receive", "issue", "adjust", "count", "thresholds"])
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"sku": "TRK-1", ', id="truncated"),
        pytest.param(b"not json", id="garbage"),
        pytest.param(b'[{"sku": "TRK-1"}]', id="array"),
        pytest.param(
            b'{"sku": "TRK-1", "location": "WH-1", "quantity": 1e400, "reason": "r"}',
            id="float-overflow",
        ),
        pytest.param(
            b'{"sku": "TRK-1", "location": "WH-1", "quantity": 100000000000000000000000, '
            b'"reason": "r"}',
            id="integer-beyond-64-bits",
        ),
    ],
)
def test_stock_commands_refuse_malformed_json_and_write_nothing(api, stocked, command, raw):
    # given
    before = counts()

    # when
    response = api.post(f"{STOCK}{command}/", data=raw, content_type="application/json")

    # then
    assert_problem(response, 400)
    assert counts() == before


def test_stock_command_with_an_unknown_product_for_this_place_creates_no_level(api, main):
    # given: a tracked product that was never stocked anywhere
    ProductFactory(sku="NEW-1", track_inventory=True)
    before = counts()

    # when
    response = post(
        api, f"{STOCK}issue/", {"sku": "NEW-1", "location": "WH-1", "quantity": 1, "reason": "r"}
    )

    # then
    body = assert_problem(response, 409, "insufficient_stock")
    assert body["available"] == 0
    assert counts() == before


# --- Transfers ------------------------------------------------------------------------------


def ship(api, quantity: int = 4, **extra):
    body = {"sku": "TRK-1", "from_location": "WH-1", "to_location": "ST-1", "quantity": quantity}
    return post(api, TRANSFERS, {**body, **extra})


def test_create_transfer_ships_at_once(api, stocked):
    # given
    ledger_mark, event_mark = last_ledger_id(), last_event_id()

    # when
    response = ship(api, 4, reason="restock the store")

    # then
    assert response.status_code == 201, response.content
    data = response.json()
    transfer = Transfer.objects.get()
    assert data["id"] == transfer.pk
    assert {k: data[k] for k in ("sku", "from_location", "to_location", "quantity")} == {
        "sku": "TRK-1",
        "from_location": "WH-1",
        "to_location": "ST-1",
        "quantity": 4,
    }
    assert (data["status"], data["version"], data["reason"]) == (
        "in_transit",
        1,
        "restock the store",
    )
    assert data["created_at"] and data["updated_at"]
    assert response["Location"] == f"/api/v1/transfers/{transfer.pk}/"
    assert response["ETag"] == '"1"'
    assert numbers("WH-1") == (6, 0, 6, 0, 0)
    assert numbers("ST-1") == (0, 0, 0, 4, 0)
    assert ledger_rows(ledger_mark) == [
        ("WH-1", "transfer_out", -4, 0, 0, 0, 6, 0, 2),
        ("ST-1", "transfer_incoming", 0, 0, 4, 0, 0, 0, 1),
    ]
    # ST-1 has nothing available yet (0 <= reorder point 0), so its new level starts low
    assert event_types(event_mark) == ["stock.transfer_shipped", "stock.low"]
    assert OutboxEvent.objects.get(event_type="stock.low").payload["location"] == "ST-1"


def test_receive_transfer_lands_the_stock(api, stocked):
    # given
    transfer_id = ship(api, 4).json()["id"]
    ledger_mark, event_mark = last_ledger_id(), last_event_id()

    # when
    response = post(api, f"{TRANSFERS}{transfer_id}/receive/", {"reason": "arrived"})

    # then
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["version"]) == ("received", 2)
    assert response["ETag"] == '"2"'
    assert numbers("WH-1") == (6, 0, 6, 0, 0)
    assert numbers("ST-1") == (4, 0, 4, 0, 0)
    assert ledger_rows(ledger_mark) == [("ST-1", "transfer_in", 4, 0, -4, 0, 4, 0, 2)]
    assert event_types(event_mark) == ["stock.transfer_received"]


def test_cancel_transfer_returns_the_stock(api, stocked):
    # given
    transfer_id = ship(api, 4).json()["id"]
    event_mark = last_event_id()

    # when
    response = post(api, f"{TRANSFERS}{transfer_id}/cancel/", {})

    # then
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["version"]) == ("cancelled", 2)
    assert numbers("WH-1") == (10, 0, 10, 0, 0)
    assert numbers("ST-1") == (0, 0, 0, 0, 0)
    assert event_types(event_mark) == ["stock.transfer_cancelled"]


@pytest.mark.parametrize("first", ["receive", "cancel"])
@pytest.mark.parametrize("second", ["receive", "cancel"])
def test_a_finished_transfer_cannot_be_finished_again(api, stocked, first, second):
    # given
    transfer_id = ship(api, 4).json()["id"]
    post(api, f"{TRANSFERS}{transfer_id}/{first}/", {})
    before = counts()

    # when
    response = post(api, f"{TRANSFERS}{transfer_id}/{second}/", {})

    # then
    body = assert_problem(response, 409, "transfer_not_in_transit")
    assert str(transfer_id) in body["detail"]
    assert counts() == before


@pytest.mark.parametrize("action", ["receive", "cancel"])
def test_unknown_transfer_is_404(api, stocked, action):
    # when
    read = api.get(f"{TRANSFERS}424242/")
    write = post(api, f"{TRANSFERS}424242/{action}/", {})

    # then
    assert_problem(read, 404, "not_found")
    assert_problem(write, 404, "not_found")


def test_transfer_beyond_available_is_409_with_available_and_writes_nothing(api, stocked):
    # given
    before = counts()

    # when
    response = ship(api, 11)

    # then
    body = assert_problem(response, 409, "insufficient_stock")
    assert (body["available"], body["requested"], body["sku"], body["location"]) == (
        10,
        11,
        "TRK-1",
        "WH-1",
    )
    assert counts() == before


def test_transfer_detail_list_and_filters(api, stocked):
    # given
    first = ship(api, 1).json()["id"]
    second = ship(api, 2).json()["id"]
    post(api, f"{TRANSFERS}{first}/receive/", {})

    # when
    detail = api.get(f"{TRANSFERS}{second}/")
    everything = api.get(TRANSFERS)
    in_transit = api.get(TRANSFERS, {"status": "in_transit"})
    received = api.get(TRANSFERS, {"status": "received", "sku": "TRK-1"})
    other_sku = api.get(TRANSFERS, {"sku": "SKU-404"})
    bad_status = api.get(TRANSFERS, {"status": "lost"})

    # then
    assert detail.status_code == 200
    assert (detail.json()["id"], detail.json()["quantity"]) == (second, 2)
    assert detail["ETag"] == '"1"'
    assert [t["id"] for t in everything.json()["results"]] == [second, first]
    assert [t["id"] for t in in_transit.json()["results"]] == [second]
    assert [t["id"] for t in received.json()["results"]] == [first]
    assert other_sku.json()["results"] == []
    assert_problem(bad_status, 400, "validation_error")


def test_transfer_list_walks_pages_with_a_cursor(api, stocked):
    # given
    ids = [ship(api, 1).json()["id"] for _ in range(5)]

    # when
    seen, url, params = [], TRANSFERS, {"page_size": 2}
    while url:
        page = api.get(url, params).json()
        seen += [t["id"] for t in page["results"]]
        url, params = page["next"], None

    # then
    assert seen == ids[::-1]


def _transfer(**overrides):
    body = {"sku": "TRK-1", "from_location": "WH-1", "to_location": "ST-1", "quantity": 1}
    return {**body, **overrides}


BAD_TRANSFER_BODIES = [
    pytest.param(_transfer(quantity=0), "quantity", None, id="zero"),
    pytest.param(_transfer(quantity=-3), "quantity", "min_value", id="negative"),
    pytest.param(_transfer(quantity="3"), "quantity", "invalid", id="string-number"),
    pytest.param(_transfer(quantity=2.5), "quantity", "invalid", id="fractional"),
    pytest.param(_transfer(quantity=10**12), "quantity", "max_value", id="huge"),
    pytest.param(_transfer(to_location="WH-1"), "to_location", None, id="same-place"),
    pytest.param(_transfer(sku="NOPE-1"), "sku", "unknown_sku", id="unknown-sku"),
    pytest.param(
        {k: v for k, v in _transfer().items() if k != "to_location"},
        "to_location",
        "required",
        id="missing-to",
    ),
    pytest.param(_transfer(reason="x" * 501), "reason", "max_length", id="long-reason"),
    pytest.param(_transfer(carrier="DHL"), "carrier", "unknown_field", id="unknown-field"),
]


@pytest.mark.parametrize(("body", "attr", "code"), BAD_TRANSFER_BODIES)
def test_create_transfer_refuses_bad_input_and_writes_nothing(api, stocked, body, attr, code):
    # given
    before = counts()

    # when
    response = post(api, TRANSFERS, body)

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, attr, code)
    assert counts() == before


@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        pytest.param(
            _transfer(from_location="NOPE-1"),
            "from_location",
            "unknown_location",
            id="unknown-from",
        ),
        pytest.param(
            _transfer(to_location="NOPE-1"), "to_location", "unknown_location", id="unknown-to"
        ),
        pytest.param(
            _transfer(from_location="OLD-1"),
            "from_location",
            "inactive_location",
            id="inactive-from",
        ),
        pytest.param(
            _transfer(to_location="OLD-1"), "to_location", "inactive_location", id="inactive-to"
        ),
    ],
)
def test_create_transfer_names_the_bad_location_field_and_writes_nothing(
    api, stocked, body, attr, code
):
    # given
    before = counts()

    # when
    response = post(api, TRANSFERS, body)

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert [(error["attr"], error["code"]) for error in problem["errors"]] == [(attr, code)]
    assert counts() == before


def test_transfer_receive_refuses_unknown_fields_and_writes_nothing(api, stocked):
    # given
    transfer_id = ship(api, 4).json()["id"]
    before = counts()

    # when
    response = post(api, f"{TRANSFERS}{transfer_id}/receive/", {"quantity": 2})

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, "quantity", "unknown_field")
    assert counts() == before


# --- Reservations ---------------------------------------------------------------------------


def reserve(api, quantity: int, **extra):
    return post(api, RESERVATIONS, {"sku": "TRK-1", "quantity": quantity, **extra})


def test_reservation_without_location_allocates_by_priority(api, stocked, audit):
    # given: 3 at WH-1 after an issue, 5 at ST-1
    post(api, f"{STOCK}issue/", {"sku": "TRK-1", "location": "WH-1", "quantity": 7, "reason": "r"})
    receive(api, 5, location="ST-1")
    ledger_mark, event_mark = last_ledger_id(), last_event_id()
    started = timezone.now()

    # when
    response = reserve(api, 6, reference="cart-17", reason="checkout")

    # then
    assert response.status_code == 201, response.content
    data = response.json()
    reservation = Reservation.objects.get()
    assert data["id"] == reservation.pk
    assert (data["sku"], data["quantity"], data["status"], data["version"]) == (
        "TRK-1",
        6,
        "active",
        1,
    )
    assert (data["reference"], data["order"]) == ("cart-17", None)
    assert data["allocations"] == [
        {"location": "WH-1", "quantity": 3, "backordered": 0},
        {"location": "ST-1", "quantity": 3, "backordered": 0},
    ]
    default_expiry = parse_datetime(data["expires_at"]) - started
    assert timedelta(minutes=14) < default_expiry <= timedelta(minutes=15, seconds=5)
    assert response["Location"] == f"/api/v1/reservations/{reservation.pk}/"
    assert response["ETag"] == '"1"'
    assert numbers("WH-1") == (3, 3, 0, 0, 0)
    assert numbers("ST-1") == (5, 3, 2, 0, 0)
    assert ledger_rows(ledger_mark) == [
        ("WH-1", "reserve", 0, 3, 0, 0, 3, 3, 3),
        ("ST-1", "reserve", 0, 3, 0, 0, 5, 3, 2),
    ]
    assert set(StockLedgerEntry.objects.filter(id__gt=ledger_mark).values_list("reason")) == {
        ("checkout",)
    }
    assert event_types(event_mark) == ["stock.reserved", "stock.low"]


def test_reservation_at_a_pinned_location_with_ttl(api, stocked):
    # given
    receive(api, 5, location="ST-1")
    started = timezone.now()

    # when
    response = reserve(api, 4, location="ST-1", ttl_seconds=600)

    # then
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["allocations"] == [{"location": "ST-1", "quantity": 4, "backordered": 0}]
    ttl = parse_datetime(data["expires_at"]) - started
    assert timedelta(seconds=599) < ttl <= timedelta(seconds=605)
    assert numbers("WH-1") == (10, 0, 10, 0, 0)
    assert numbers("ST-1") == (5, 4, 1, 0, 0)


def test_reservation_with_expires_at_keeps_it(api, stocked):
    # given
    expires_at = (timezone.now() + timedelta(days=2)).replace(microsecond=0)

    # when
    response = reserve(api, 2, expires_at=expires_at.isoformat())

    # then
    assert response.status_code == 201, response.content
    assert parse_datetime(response.json()["expires_at"]) == expires_at
    assert Reservation.objects.get().expires_at == expires_at


def test_reservation_expires_at_is_capped_like_ttl_seconds(api, stocked):
    # given: one moment just past the 7-day cap of ttl_seconds, one just within it
    now = timezone.now()
    too_late = now + timedelta(days=7, seconds=30)
    in_time = now + timedelta(days=7, seconds=-30)
    before = counts()

    # when
    refused = reserve(api, 2, expires_at=too_late.isoformat())
    written = counts()
    accepted = reserve(api, 2, expires_at=in_time.isoformat())

    # then: the service refuses it as a field error and writes nothing
    problem = assert_problem(refused, 400, "validation_error")
    error = assert_field_error(problem, "expires_at", "invalid")
    assert "at most 7 days from now" in error["detail"]
    assert written == before
    assert accepted.status_code == 201, accepted.content
    assert parse_datetime(accepted.json()["expires_at"]) == in_time


def test_reservation_for_a_backorder_product_records_the_shortfall(api, main):
    # given
    ProductFactory(sku="PRE-1", track_inventory=True, allow_backorder=True)
    receive(api, 2, sku="PRE-1")

    # when
    response = post(api, RESERVATIONS, {"sku": "PRE-1", "quantity": 5})

    # then
    assert response.status_code == 201, response.content
    assert response.json()["allocations"] == [{"location": "WH-1", "quantity": 5, "backordered": 3}]
    assert numbers("WH-1", sku="PRE-1") == (2, 2, 0, 0, 3)


def test_reservation_beyond_available_is_409_with_available_and_writes_nothing(api, stocked):
    # given
    receive(api, 5, location="ST-1")
    before = counts()

    # when
    anywhere = reserve(api, 16)
    pinned = reserve(api, 6, location="ST-1")

    # then
    body = assert_problem(anywhere, 409, "insufficient_stock")
    assert (body["available"], body["requested"], body["sku"]) == (15, 16, "TRK-1")
    assert "location" not in body
    body = assert_problem(pinned, 409, "insufficient_stock")
    assert (body["available"], body["requested"], body["location"]) == (5, 6, "ST-1")
    assert counts() == before


def test_confirm_consumes_the_reservation(api, stocked):
    # given
    reservation_id = reserve(api, 4).json()["id"]
    ledger_mark, event_mark = last_ledger_id(), last_event_id()

    # when
    response = post(api, f"{RESERVATIONS}{reservation_id}/confirm/", {"reason": "shipped"})

    # then
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["version"]) == ("confirmed", 2)
    assert response["ETag"] == '"2"'
    assert numbers("WH-1") == (6, 0, 6, 0, 0)
    assert ledger_rows(ledger_mark) == [("WH-1", "consume", -4, -4, 0, 0, 6, 0, 3)]
    assert event_types(event_mark) == ["reservation.confirmed"]


def test_cancel_releases_the_reservation(api, stocked):
    # given
    reservation_id = reserve(api, 4).json()["id"]
    ledger_mark, event_mark = last_ledger_id(), last_event_id()

    # when
    response = post(api, f"{RESERVATIONS}{reservation_id}/cancel/", {})

    # then
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["version"]) == ("cancelled", 2)
    assert numbers("WH-1") == (10, 0, 10, 0, 0)
    assert ledger_rows(ledger_mark) == [("WH-1", "release", 0, -4, 0, 0, 10, 0, 3)]
    assert event_types(event_mark) == ["reservation.cancelled"]


@pytest.mark.parametrize("first", ["confirm", "cancel"])
@pytest.mark.parametrize("second", ["confirm", "cancel"])
def test_a_finished_reservation_is_409_not_active(api, stocked, first, second):
    # given
    reservation_id = reserve(api, 4).json()["id"]
    post(api, f"{RESERVATIONS}{reservation_id}/{first}/", {})
    before = counts()

    # when
    response = post(api, f"{RESERVATIONS}{reservation_id}/{second}/", {})

    # then
    body = assert_problem(response, 409, "reservation_not_active")
    assert str(reservation_id) in body["detail"]
    assert counts() == before


@pytest.mark.parametrize("action", ["confirm", "cancel"])
def test_unknown_reservation_is_404(api, stocked, action):
    # when
    read = api.get(f"{RESERVATIONS}424242/")
    write = post(api, f"{RESERVATIONS}424242/{action}/", {})

    # then
    assert_problem(read, 404, "not_found")
    assert_problem(write, 404, "not_found")


def test_reservation_detail_list_and_filters(api, stocked, make_order):
    # given
    first = reserve(api, 1).json()["id"]
    second = reserve(api, 2).json()["id"]
    post(api, f"{RESERVATIONS}{first}/cancel/", {})
    order = make_order(lines={"TRK-1": 3})
    by_order = Reservation.objects.get(order=order).pk

    # when
    detail = api.get(f"{RESERVATIONS}{second}/")
    everything = api.get(RESERVATIONS)
    active = api.get(RESERVATIONS, {"status": "active"})
    cancelled = api.get(RESERVATIONS, {"status": "cancelled", "sku": "TRK-1"})
    of_order = api.get(RESERVATIONS, {"order": order.pk})
    other_sku = api.get(RESERVATIONS, {"sku": "SKU-404"})
    bad_status = api.get(RESERVATIONS, {"status": "lost"})

    # then
    assert detail.status_code == 200
    assert (detail.json()["quantity"], detail.json()["status"]) == (2, "active")
    assert [r["id"] for r in everything.json()["results"]] == [by_order, second, first]
    assert [r["id"] for r in active.json()["results"]] == [by_order, second]
    assert [r["id"] for r in cancelled.json()["results"]] == [first]
    assert [(r["id"], r["order"]) for r in of_order.json()["results"]] == [(by_order, order.pk)]
    assert of_order.json()["results"][0]["reference"] == f"order:{order.pk}"
    assert other_sku.json()["results"] == []
    assert_problem(bad_status, 400, "validation_error")


def _reservation(**overrides):
    return {"sku": "TRK-1", "quantity": 1, **overrides}


def _in(**delta) -> str:
    return (timezone.now() + timedelta(**delta)).isoformat()


BAD_RESERVATION_BODIES = [
    pytest.param(_reservation(quantity=0), "quantity", None, id="zero"),
    pytest.param(_reservation(quantity=-1), "quantity", "min_value", id="negative"),
    pytest.param(_reservation(quantity="2"), "quantity", "invalid", id="string-number"),
    pytest.param(_reservation(quantity=1.5), "quantity", "invalid", id="fractional"),
    pytest.param(_reservation(quantity=10**12), "quantity", "max_value", id="huge"),
    pytest.param({"sku": "TRK-1"}, "quantity", "required", id="missing-quantity"),
    pytest.param(_reservation(sku="NOPE-1"), "sku", "unknown_sku", id="unknown-sku"),
    pytest.param(_reservation(location="NOPE-1"), "location", "unknown_location", id="unknown-loc"),
    pytest.param(_reservation(location="OLD-1"), "location", "inactive_location", id="inactive"),
    pytest.param(_reservation(ttl_seconds=0), "ttl_seconds", "min_value", id="ttl-zero"),
    pytest.param(
        _reservation(ttl_seconds=7 * 86400 + 1), "ttl_seconds", "max_value", id="ttl-over-7-days"
    ),
    pytest.param(_reservation(ttl_seconds="60"), "ttl_seconds", "invalid", id="ttl-string"),
    pytest.param(
        _reservation(expires_at="2020-01-01T00:00:00Z"), "expires_at", "invalid", id="past"
    ),
    pytest.param(_reservation(expires_at=5), "expires_at", "invalid", id="expires-number"),
    pytest.param(
        _reservation(expires_at="9999-12-31T23:59:59Z"), "expires_at", "invalid", id="year-9999"
    ),
    pytest.param(
        _reservation(expires_at=_in(hours=1), ttl_seconds=60),
        "non_field_errors",
        "exclusive",
        id="both-expiry-forms",
    ),
    pytest.param(_reservation(reference="x" * 101), "reference", "max_length", id="long-ref"),
    pytest.param(_reservation(status="active"), "status", "unknown_field", id="unknown-field"),
]


@pytest.mark.parametrize(("body", "attr", "code"), BAD_RESERVATION_BODIES)
def test_create_reservation_refuses_bad_input_and_writes_nothing(api, stocked, body, attr, code):
    # given
    before = counts()

    # when
    response = post(api, RESERVATIONS, body)

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, attr, code)
    assert counts() == before


@pytest.mark.parametrize(
    ("value", "explains"),
    [
        pytest.param("2099-01-31T12:00:00", "no timezone", id="naive"),
        pytest.param("next tuesday", "not an ISO-8601 date-time", id="garbage"),
        pytest.param("2099-02-30T00:00:00Z", "not an ISO-8601 date-time", id="no-such-day"),
    ],
)
def test_create_reservation_refuses_naive_or_malformed_expires_at(api, stocked, value, explains):
    # given
    before = counts()

    # when
    response = post(api, RESERVATIONS, _reservation(expires_at=value))

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert [error["attr"] for error in problem["errors"]] == ["expires_at"]
    error = assert_field_error(problem, "expires_at", "invalid")
    assert explains in error["detail"]
    assert counts() == before


@pytest.mark.parametrize("path", [RESERVATIONS, TRANSFERS, LOCATIONS])
@pytest.mark.parametrize("raw", [b"{oops", b"[1, 2]", b'"text"'])
def test_creates_refuse_malformed_json_and_write_nothing(api, stocked, path, raw):
    # given
    before = counts()

    # when
    response = api.post(path, data=raw, content_type="application/json")

    # then
    assert_problem(response, 400)
    assert counts() == before


@pytest.mark.parametrize("path", [TRANSFERS, RESERVATIONS, LOCATIONS])
def test_lists_take_the_same_number_of_queries_for_one_or_many_rows(api, stocked, path):
    # given
    def add_one():
        if path == TRANSFERS:
            ship(api, 1)
        elif path == RESERVATIONS:
            reserve(api, 1, location="WH-1")
        else:
            post(api, LOCATIONS, {"code": f"L-{Location.objects.count()}", "name": "L"})

    add_one()
    with CaptureQueriesContext(connection) as one:
        assert api.get(path).status_code == 200
    for _ in range(4):
        add_one()

    # when
    with CaptureQueriesContext(connection) as many:
        response = api.get(path)

    # then
    assert len(response.json()["results"]) >= 5
    assert len(many.captured_queries) == len(one.captured_queries)
