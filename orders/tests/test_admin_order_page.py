"""The order's change page: the stock its lines hold, the Cancel and Fulfil buttons, and
the Timeline as its one history."""

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from history.models import OrderLedgerEntry, StockLedgerEntry
from inventory.models import StockLevel
from inventory.services import location_create, stock_receive
from orders import services
from orders.models import Order, OrderStatus
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def change_url(order: Order) -> str:
    return reverse("admin:orders_order_change", args=[order.pk])


def close_url(order: Order) -> str:
    return reverse("admin:orders_order_close", args=[order.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def staff_client(client, user_with_role):
    client.force_login(user_with_role("order_staff"))
    return client


@pytest.fixture
def auditor_client(client, user_with_role):
    client.force_login(user_with_role("auditor"))
    return client


@pytest.fixture
def tracked_order(make_order, audit):
    """An order of 50 TRK-1 held over two locations: 30 on hand at WH-A (reserved from
    first), 10 on hand and 10 backordered at WH-B."""
    ProductFactory(sku="TRK-1", track_inventory=True, allow_backorder=True)
    location_create(code="WH-A", name="First", priority=1)
    location_create(code="WH-B", name="Second", priority=2)
    stock_receive(sku="TRK-1", location="WH-A", quantity=30, audit=audit)
    stock_receive(sku="TRK-1", location="WH-B", quantity=10, audit=audit)
    return make_order(lines={"TRK-1": 50})


def close_data(order: Order, *, close: str, reason_code="customer_request", version=None):
    return {
        "close-action": close,
        "close-reason": f"{close} from the order page",
        "close-reason_code": reason_code,
        "close-expected_version": str(order.version if version is None else version),
    }


def test_order_page_shows_each_lines_allocations_and_links(staff_client, tracked_order):
    # given
    order = tracked_order
    levels = {
        level.location.code: level.pk for level in StockLevel.objects.select_related("location")
    }

    # when
    response = staff_client.get(change_url(order))

    # then
    assert response.status_code == 200
    ((line, reservations),) = response.context["line_stock"]
    assert (line.product.sku, line.quantity) == ("TRK-1", 50)
    (reservation,) = reservations
    held = [
        (a.location.code, a.quantity, a.reserved, a.backordered, a.stock_level_id)
        for a in reservation.allocations.all()
    ]
    assert held == [("WH-A", 40, 30, 10, levels["WH-A"]), ("WH-B", 10, 10, 0, levels["WH-B"])]
    content = response.content.decode()
    for level_id in levels.values():
        timeline = reverse("admin:inventory_stocklevel_timeline", args=[level_id])
        assert f'href="{timeline}"' in content
    movements = reverse("admin:history_stockledgerentry_changelist")
    assert f"{movements}?reference_type=order&amp;reference_id={order.pk}" in content


def test_the_stock_movements_link_lists_only_the_orders_moves(
    staff_client, tracked_order, make_order, audit
):
    # given: another order's moves on the same product
    order = tracked_order
    other = make_order(lines={"TRK-1": 5}, reference="REF-2")
    url = staff_client.get(change_url(order)).context["stock_movements_url"]

    # when
    response = staff_client.get(url)

    # then
    assert response.status_code == 200
    shown = {row.pk for row in response.context["cl"].result_list}
    caused = StockLedgerEntry.objects.filter(reference_type="order", reference_id=str(order.pk))
    assert shown == set(caused.values_list("pk", flat=True))
    assert shown
    assert not caused.filter(reference_id=str(other.pk)).exists()


def test_the_stock_panel_costs_the_same_queries_whatever_the_lines(
    staff_client, tracked_order, audit
):
    # given
    order = tracked_order
    with CaptureQueriesContext(connection) as one_line:
        staff_client.get(change_url(order))
    ProductFactory(sku="TRK-2", track_inventory=True, allow_backorder=True)
    stock_receive(sku="TRK-2", location="WH-B", quantity=5, audit=audit)
    services.order_set_quantities(
        order_id=order.pk, quantities={"TRK-2": 3}, expected_version=1, audit=audit
    )

    # when
    with CaptureQueriesContext(connection) as two_lines:
        response = staff_client.get(change_url(order))

    # then
    assert len(response.context["line_stock"]) == 2
    assert len(two_lines) <= len(one_line) + 2  # the inline's second row (product label)


def test_untracked_line_says_so(staff_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 10})

    # when
    response = staff_client.get(change_url(order))

    # then
    assert "Stock not tracked." in response.content.decode()


def test_history_button_is_gone_and_its_url_leads_to_the_timeline(staff_client, tracked_order):
    # given
    order = tracked_order
    history = reverse("admin:orders_order_history", args=[order.pk])
    timeline = reverse("admin:orders_order_timeline", args=[order.pk])

    # when
    page = staff_client.get(change_url(order)).content.decode()
    response = staff_client.get(history)

    # then
    assert f'href="{history}"' not in page
    assert ">History<" not in page
    assert f'href="{timeline}"' in page
    assert response.status_code == 302
    assert response.url == timeline


@pytest.mark.parametrize(
    ("close", "status", "event"),
    [
        ("cancel", OrderStatus.CANCELLED, "order.cancelled"),
        ("fulfil", OrderStatus.FULFILLED, "order.fulfilled"),
    ],
)
def test_close_buttons_call_the_service_with_the_reason(
    staff_client, tracked_order, make_order, audit, close, status, event
):
    # given: an order whose stock is all on hand (a backordered part cannot be fulfilled)
    ProductFactory(sku="TRK-9", track_inventory=True)
    stock_receive(sku="TRK-9", location="WH-A", quantity=100, audit=audit)
    order = make_order(lines={"TRK-9": 20}, reference="REF-9")
    page = staff_client.get(change_url(order)).content.decode()
    assert f'value="{close}"' in page

    # when
    response = staff_client.post(close_url(order), close_data(order, close=close))

    # then
    assert response.status_code == 302
    assert response.url == change_url(order)
    order.refresh_from_db()
    assert (order.status, order.version) == (status, 2)
    (row,) = OrderLedgerEntry.objects.filter(order=order, version=2)
    assert (row.event_type, row.reason_code) == (event, "customer_request")
    assert row.reason == f"{close} from the order page"
    assert row.source == "admin"
    assert any("now version 2" in message for message in messages_of(response))
    if close == "fulfil":
        level = StockLevel.objects.get(product__sku="TRK-9", location__code="WH-A")
        assert (level.on_hand, level.reserved) == (80, 0)


@pytest.mark.parametrize("close", ["cancel", "fulfil"])
def test_close_buttons_require_a_reason_code(staff_client, tracked_order, close):
    # given
    order = tracked_order
    stock_rows = StockLedgerEntry.objects.count()

    # when
    response = staff_client.post(close_url(order), close_data(order, close=close, reason_code=""))

    # then
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.version) == (OrderStatus.OPEN, 1)
    assert StockLedgerEntry.objects.count() == stock_rows
    assert any("reason code" in message.lower() for message in messages_of(response))


@pytest.mark.parametrize("close", ["cancel", "fulfil"])
def test_close_buttons_refuse_a_stale_page(staff_client, tracked_order, close, audit):
    # given: the page was rendered at version 1, then someone changed the order
    order = tracked_order
    services.order_set_quantities(
        order_id=order.pk, quantities={"TRK-1": 45}, expected_version=1, audit=audit
    )
    ledger_rows = OrderLedgerEntry.objects.count()

    # when
    response = staff_client.post(close_url(order), close_data(order, close=close, version=1))

    # then
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.version) == (OrderStatus.OPEN, 2)
    assert OrderLedgerEntry.objects.count() == ledger_rows
    assert any(
        "someone else changed this order" in message and "now at version 2" in message
        for message in messages_of(response)
    )


def test_close_buttons_need_a_reason(staff_client, tracked_order):
    # given
    order = tracked_order
    data = {**close_data(order, close="cancel"), "close-reason": "  "}

    # when
    response = staff_client.post(close_url(order), data)

    # then
    order.refresh_from_db()
    assert order.status == OrderStatus.OPEN
    assert any("Nothing was changed" in message for message in messages_of(response))


def test_auditor_sees_the_stock_but_no_close_buttons_and_cannot_post(auditor_client, tracked_order):
    # given
    order = tracked_order

    # when
    page = auditor_client.get(change_url(order)).content.decode()
    response = auditor_client.post(close_url(order), close_data(order, close="cancel"))

    # then
    assert 'id="order-stock"' in page
    assert 'id="order-close"' not in page
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.status == OrderStatus.OPEN


def test_closed_order_has_no_close_buttons(staff_client, tracked_order, audit):
    # given
    order = services.order_cancel(order_id=tracked_order.pk, audit=audit)

    # when
    page = staff_client.get(change_url(order)).content.decode()

    # then
    assert 'id="order-close"' not in page
    assert "Cancelled" in page


def test_fulfil_is_disabled_while_a_backorder_is_not_in_stock(staff_client, tracked_order, audit):
    # given: 10 of TRK-1 at WH-A are backordered and nothing there is available
    order = tracked_order

    # when
    blocked = staff_client.get(change_url(order))
    stock_receive(sku="TRK-1", location="WH-A", quantity=10, audit=audit)
    ready = staff_client.get(change_url(order))

    # then
    assert blocked.context["fulfil_blockers"] == ["TRK-1@WH-A is 10 short of its backorder"]
    page = blocked.content.decode()
    assert 'value="fulfil" disabled' in page
    assert 'value="cancel">' in page
    assert "Fulfil waits for stock: TRK-1@WH-A is 10 short of its backorder." in page
    assert ready.context["fulfil_blockers"] == []
    assert 'value="fulfil">' in ready.content.decode()
    response = staff_client.post(close_url(order), close_data(order, close="fulfil"))
    order.refresh_from_db()
    assert order.status == OrderStatus.FULFILLED, messages_of(response)


def test_a_refused_close_keeps_the_reason_as_typed_once(staff_client, tracked_order, audit):
    # given: the page was rendered at version 1, then someone changed the order
    order = tracked_order
    services.order_set_quantities(
        order_id=order.pk, quantities={"TRK-1": 45}, expected_version=1, audit=audit
    )
    data = {**close_data(order, close="cancel", version=1), "close-reason": "Customer phoned"}

    # when
    staff_client.post(close_url(order), data)
    again = staff_client.get(change_url(order))
    later = staff_client.get(change_url(order))

    # then: the form shows the typed reason and code, and the version as it is now
    form = again.context["close_form"]
    assert form["reason"].value() == "Customer phoned"
    assert form["reason_code"].value() == "customer_request"
    assert form["expected_version"].value() == 2
    assert "Customer phoned</textarea>" in again.content.decode()
    assert later.context["close_form"]["reason"].value() is None
