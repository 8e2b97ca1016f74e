"""POST /orders/{id}/fulfil/ and the order flow through the API with tracked stock:
orders reserve on create and change, refuse what cannot be reserved, and consume their
reservations when fulfilled."""

import pytest

from history.models import OrderLedgerEntry, OutboxEvent, StockLedgerEntry
from inventory.models import Reservation, StockLevel
from inventory.services import location_create
from orders.models import Order, OrderLine
from tests.factories import ProductFactory
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
ORDERS = "/api/v1/orders/"


@pytest.fixture
def tracked(db):
    return ProductFactory(sku="TRK-1", name="Tracked", track_inventory=True)


@pytest.fixture
def main(db):
    return location_create(code="WH-1", name="Main warehouse")


def counts() -> dict:
    models = (Order, OrderLine, OrderLedgerEntry, OutboxEvent, StockLedgerEntry, Reservation)
    snapshot = {model.__name__: model.objects.count() for model in models}
    snapshot["stock"] = list(
        StockLevel.objects.order_by("pk").values_list("on_hand", "reserved", "backorder", "version")
    )
    snapshot["orders"] = list(Order.objects.order_by("pk").values_list("status", "version"))
    return snapshot


def numbers(sku: str = "TRK-1", code: str = "WH-1") -> tuple[int, int, int, int]:
    """(on_hand, reserved, available, backorder)"""
    level = StockLevel.objects.get(product__sku=sku, location__code=code)
    return level.on_hand, level.reserved, level.available, level.backorder


def post(api, path: str, body, **headers):
    return api.post(path, body, format="json", **headers)


def receive(api, quantity: int, sku: str = "TRK-1"):
    body = {"sku": sku, "location": "WH-1", "quantity": quantity, "reason": "delivery"}
    response = post(api, "/api/v1/stock/receive/", body)
    assert response.status_code == 200, response.content
    return response


def create_order(api, quantity: int, sku: str = "TRK-1"):
    return post(api, ORDERS, {"lines": [{"sku": sku, "quantity": quantity}]})


def fulfil_url(order_id: int) -> str:
    return f"{ORDERS}{order_id}/fulfil/"


def test_order_flow_reserves_refuses_what_is_not_there_and_consumes_on_fulfil(api, tracked, main):
    # given: 10 received
    receive(api, 10)

    # when: an order of 6 reserves 6
    created = create_order(api, 6)

    # then
    assert created.status_code == 201, created.content
    order_id = created.json()["id"]
    assert numbers() == (10, 6, 4, 0)

    # when: raising it to 12 needs 6 more, but only 4 are available
    before = counts()
    refused = api.patch(
        f"{ORDERS}{order_id}/",
        {"lines": [{"sku": "TRK-1", "quantity": 12}], "reason": "more"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )

    # then: 409 with the numbers, and nothing written
    body = assert_problem(refused, 409, "insufficient_stock")
    assert (body["sku"], body["requested"], body["available"]) == ("TRK-1", 6, 4)
    assert counts() == before
    assert numbers() == (10, 6, 4, 0)

    # when: the order drops by 2, which releases 2
    adjusted = post(
        api, f"{ORDERS}{order_id}/adjust/", {"sku": "TRK-1", "delta": -2, "reason": "less"}
    )

    # then
    assert adjusted.status_code == 200, adjusted.content
    assert adjusted.json()["lines"] == [{"sku": "TRK-1", "quantity": 4}]
    assert numbers() == (10, 4, 6, 0)

    # when: fulfilled
    event_mark = OutboxEvent.objects.order_by("-id").first().pk
    fulfilled = post(api, fulfil_url(order_id), {"reason": "shipped"}, HTTP_IF_MATCH='"2"')

    # then: the 4 reserved leave on_hand
    assert fulfilled.status_code == 200, fulfilled.content
    data = fulfilled.json()
    assert (data["status"], data["version"]) == ("fulfilled", 3)
    assert data["lines"] == [{"sku": "TRK-1", "quantity": 4}]
    assert fulfilled["ETag"] == '"3"'
    assert numbers() == (6, 0, 6, 0)
    consumed = StockLedgerEntry.objects.order_by("-id").first()
    assert (consumed.movement, consumed.delta_on_hand, consumed.delta_reserved) == (
        "consume",
        -4,
        -4,
    )
    assert (consumed.reference_type, consumed.reference_id) == ("order", str(order_id))
    assert (consumed.reason, consumed.source) == ("shipped", "api")
    assert list(
        OutboxEvent.objects.filter(pk__gt=event_mark).order_by("id").values_list("event_type")
    ) == [("reservation.confirmed",), ("order.fulfilled",)]
    row = OrderLedgerEntry.objects.get(order_id=order_id, version=3)
    assert (row.event_type, row.quantity_before, row.quantity_after) == ("order.fulfilled", 4, 4)
    assert Reservation.objects.get(order_id=order_id).status == "confirmed"


def test_fulfil_an_order_without_tracked_stock(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 5})

    # when
    response = post(api, fulfil_url(order.pk), {})

    # then
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["version"]) == ("fulfilled", 2)
    assert StockLedgerEntry.objects.count() == 0
    assert OutboxEvent.objects.order_by("-id").first().event_type == "order.fulfilled"


def test_fulfil_with_a_backorder_not_yet_on_hand_is_409_and_writes_nothing(api, main):
    # given: 2 on hand of a product that allows backorders; an order of 5 backorders 3
    ProductFactory(sku="PRE-1", track_inventory=True, allow_backorder=True)
    receive(api, 2, sku="PRE-1")
    order_id = create_order(api, 5, sku="PRE-1").json()["id"]
    assert numbers("PRE-1") == (2, 2, 0, 3)
    before = counts()

    # when
    response = post(api, fulfil_url(order_id), {})

    # then
    body = assert_problem(response, 409, "insufficient_stock")
    assert (body["sku"], body["requested"], body["available"], body["location"]) == (
        "PRE-1",
        3,
        0,
        "WH-1",
    )
    assert counts() == before
    assert Order.objects.get(pk=order_id).status == "open"


def test_fulfil_once_the_backorder_arrived(api, main):
    # given
    ProductFactory(sku="PRE-1", track_inventory=True, allow_backorder=True)
    receive(api, 2, sku="PRE-1")
    order_id = create_order(api, 5, sku="PRE-1").json()["id"]
    receive(api, 3, sku="PRE-1")
    assert numbers("PRE-1") == (5, 2, 3, 3)

    # when
    response = post(api, fulfil_url(order_id), {})

    # then
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "fulfilled"
    assert numbers("PRE-1") == (0, 0, 0, 0)


def test_fulfil_with_a_stale_if_match_is_412_and_writes_nothing(api, tracked, main):
    # given
    receive(api, 10)
    order_id = create_order(api, 6).json()["id"]
    post(api, f"{ORDERS}{order_id}/adjust/", {"sku": "TRK-1", "delta": 1, "reason": "r"})
    before = counts()

    # when
    response = post(api, fulfil_url(order_id), {}, HTTP_IF_MATCH='"1"')

    # then
    body = assert_problem(response, 412, "version_conflict")
    assert (body["current_version"], body["expected_version"]) == (2, 1)
    assert response["ETag"] == '"2"'
    assert counts() == before
    assert numbers() == (10, 7, 3, 0)


@pytest.mark.parametrize("first", ["fulfil", "cancel"])
def test_a_fulfilled_or_cancelled_order_cannot_be_fulfilled(api, tracked, main, first):
    # given
    receive(api, 10)
    order_id = create_order(api, 6).json()["id"]
    post(api, f"{ORDERS}{order_id}/{first}/", {})
    before = counts()

    # when
    response = post(api, fulfil_url(order_id), {})

    # then
    assert_problem(response, 409, "order_not_editable")
    assert counts() == before


def test_a_fulfilled_order_cannot_be_changed(api, tracked, main):
    # given
    receive(api, 10)
    order_id = create_order(api, 6).json()["id"]
    post(api, fulfil_url(order_id), {})
    before = counts()

    # when
    response = post(
        api, f"{ORDERS}{order_id}/adjust/", {"sku": "TRK-1", "delta": 1, "reason": "late"}
    )

    # then
    assert_problem(response, 409, "order_not_editable")
    assert counts() == before
    assert numbers() == (4, 0, 4, 0)


def test_fulfil_unknown_order_is_404(api):
    # when
    response = post(api, fulfil_url(424242), {})

    # then
    assert_problem(response, 404, "not_found")


def test_fulfil_replays_with_the_same_idempotency_key(api, tracked, main):
    # given
    receive(api, 10)
    order_id = create_order(api, 6).json()["id"]
    first = post(api, fulfil_url(order_id), {}, HTTP_IDEMPOTENCY_KEY="ship-1")

    # when
    again = post(api, fulfil_url(order_id), {}, HTTP_IDEMPOTENCY_KEY="ship-1")

    # then
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert numbers() == (4, 0, 4, 0)
    assert StockLedgerEntry.objects.filter(movement="consume").count() == 1


@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        pytest.param({"reason": "x" * 501}, "reason", "max_length", id="long-reason"),
        pytest.param({"reason": None}, "reason", "null", id="null-reason"),
        pytest.param({"carrier": "DHL"}, "carrier", "unknown_field", id="unknown-field"),
    ],
)
def test_fulfil_refuses_bad_input_and_writes_nothing(api, tracked, main, body, attr, code):
    # given
    receive(api, 10)
    order_id = create_order(api, 6).json()["id"]
    before = counts()

    # when
    response = post(api, fulfil_url(order_id), body)

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert [(e["attr"], e["code"]) for e in problem["errors"]] == [(attr, code)]
    assert counts() == before


@pytest.mark.parametrize("raw", [b"{oops", b"[1]"])
def test_fulfil_refuses_malformed_json_and_writes_nothing(api, tracked, main, raw):
    # given
    receive(api, 10)
    order_id = create_order(api, 6).json()["id"]
    before = counts()

    # when
    response = api.post(fulfil_url(order_id), data=raw, content_type="application/json")

    # then
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert counts() == before


def test_fulfil_with_a_malformed_if_match_is_400(api, tracked, main):
    # given
    receive(api, 10)
    order_id = create_order(api, 6).json()["id"]
    before = counts()

    # when
    response = post(api, fulfil_url(order_id), {}, HTTP_IF_MATCH="version one")

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"][0]["attr"] == "If-Match"
    assert counts() == before
