"""inventory.services.product_update: a product's stock flags change through one service,
recorded as an event, and never under open orders or reservations that depend on them."""

import threading
import time

import pytest
from django.db import connection, transaction

from config.errors import DomainValidationError, ProductInUse
from history.audit import Audit
from history.models import OutboxEvent, Source, StockLedgerEntry
from inventory.models import Product, StockLevel
from inventory.services import location_create, product_create, product_update, stock_receive
from orders.models import OrderLine
from orders.planner import LineRequest, OrderCommand, order_commands_plan
from orders.services import order_cancel, order_create, order_fulfil, order_set_quantities
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stocked(audit):
    """TRK-1, tracked, with 100 on hand at WH-1."""
    product = ProductFactory(sku="TRK-1", track_inventory=True)
    location_create(code="WH-1", name="Main")
    stock_receive(sku=product.sku, location="WH-1", quantity=100, audit=audit)
    return product


def _on_hand_and_reserved() -> tuple[int, int]:
    level = StockLevel.objects.get(product__sku="TRK-1")
    return level.on_hand, level.reserved


def test_tracking_cannot_be_turned_off_under_a_reservation_so_fulfilment_consumes_what_was_ordered(
    stocked, audit
):
    # given: the reproduced attack: an order reserved 10 units
    order = order_create(customer_id=None, reference="", lines={"TRK-1": 10}, audit=audit)

    # when: tracking is turned off (refused), the order is set to 2 and fulfilled
    with pytest.raises(ProductInUse) as refused:
        product_update(sku="TRK-1", track_inventory=False, audit=audit)
    order_set_quantities(order_id=order.pk, quantities={"TRK-1": 2}, audit=audit)
    order_fulfil(order_id=order.pk, audit=audit)

    # then: 2 units left, not 10
    assert refused.value.extra == {"open_orders": 1, "active_reservations": 1}
    assert Product.objects.get(sku="TRK-1").track_inventory is True
    assert _on_hand_and_reserved() == (98, 0)


def test_tracking_cannot_be_turned_on_under_an_open_untracked_line(audit):
    # given: an open order on an untracked product
    ProductFactory(sku="LOOSE-1", track_inventory=False)
    order = order_create(customer_id=None, reference="", lines={"LOOSE-1": 4}, audit=audit)
    events_before = OutboxEvent.objects.count()

    # when / then
    with pytest.raises(ProductInUse):
        product_update(sku="LOOSE-1", track_inventory=True, audit=audit)
    assert Product.objects.get(sku="LOOSE-1").track_inventory is False
    assert OutboxEvent.objects.count() == events_before

    # and once the order is closed, the flag may change
    order_cancel(order_id=order.pk, audit=audit)
    assert product_update(sku="LOOSE-1", track_inventory=True, audit=audit).track_inventory


def test_a_free_product_changes_with_one_event_and_a_new_version(audit):
    # given
    product = ProductFactory(sku="FREE-1", track_inventory=True, allow_backorder=False)
    who = Audit(actor="carla", source=Source.ADMIN, reason="supplier drop-ships")

    # when
    updated = product_update(
        sku="FREE-1", name="Free one", allow_backorder=True, track_inventory=True, audit=who
    )

    # then: only what changed is recorded
    assert (updated.name, updated.allow_backorder, updated.version) == ("Free one", True, 2)
    event = OutboxEvent.objects.get(aggregate_type="product", aggregate_id="FREE-1")
    assert (event.event_type, event.aggregate_version) == ("product.updated", 2)
    assert event.payload["changes"] == {
        "name": {"before": product.name, "after": "Free one"},
        "allow_backorder": {"before": False, "after": True},
    }
    assert (event.payload["actor"], event.payload["reason"]) == ("carla", "supplier drop-ships")
    assert not StockLedgerEntry.objects.filter(sku="FREE-1").exists()


def test_a_name_change_is_allowed_while_the_product_is_in_use(stocked, audit):
    # given
    order_create(customer_id=None, reference="", lines={"TRK-1": 1}, audit=audit)

    # when
    product = product_update(sku="TRK-1", name="Renamed", audit=audit)

    # then
    assert (product.name, product.version) == ("Renamed", 2)


def test_an_unchanged_update_records_nothing(audit):
    ProductFactory(sku="SAME-1", track_inventory=True)
    before = OutboxEvent.objects.count()
    assert product_update(sku="SAME-1", track_inventory=True, audit=audit).version == 1
    assert OutboxEvent.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_a_flag_change_waits_for_an_order_command_that_read_the_product(stocked, audit):
    # given: an order command has planned (read the product as tracked) but not yet
    # recorded its change
    order = order_create(customer_id=None, reference="", lines={"TRK-1": 5}, audit=audit)
    order_cancel(order_id=order.pk, audit=audit)
    fresh = order_create(customer_id=None, reference="", lines={"TRK-1": 0}, audit=audit)
    planned, finish = threading.Event(), threading.Event()
    outcome: dict = {}

    def order_command():
        try:
            with transaction.atomic():
                plan = order_commands_plan(
                    [OrderCommand(fresh.pk, [LineRequest("TRK-1", quantity=7)])]
                )
                planned.set()
                finish.wait(5)
                plan.reserve_stock(audit=audit, atomic=True)
                plan.record(audit=audit)
        finally:
            connection.close()

    def flag_change():
        planned.wait(5)
        try:
            product_update(sku="TRK-1", track_inventory=False, audit=audit)
            outcome["result"] = "changed"
        except ProductInUse:
            outcome["result"] = "refused"
        finally:
            connection.close()

    # when: the flag change starts while the command is between planning and recording
    threads = [threading.Thread(target=order_command), threading.Thread(target=flag_change)]
    for thread in threads:
        thread.start()
    planned.wait(5)
    time.sleep(0.3)
    waited = threads[1].is_alive()
    finish.set()
    for thread in threads:
        thread.join(10)

    # then: it waited, then saw the reservation the command made, and refused
    assert waited
    assert outcome["result"] == "refused"
    assert Product.objects.get(sku="TRK-1").track_inventory is True
    assert _on_hand_and_reserved() == (100, 7)
    assert OrderLine.objects.get(order=fresh).quantity == 7


def test_the_admin_changes_flags_through_the_service(stocked, audit, client):
    # given: staff, and an order holding the tracked product
    staff = UserFactory(role="order_staff")
    client.force_login(staff)
    order = order_create(customer_id=None, reference="", lines={"TRK-1": 3}, audit=audit)
    url = f"/admin/inventory/product/{stocked.pk}/change/"
    form = {"name": stocked.name, "allow_backorder": "on"}  # track_inventory unticked

    # when: the flag is changed while the order is open, then after it was cancelled
    refused = client.post(url, form, follow=True)
    still = Product.objects.get(pk=stocked.pk)
    order_cancel(order_id=order.pk, audit=audit)
    accepted = client.post(url, form)

    # then
    assert "Nothing was saved" in refused.content.decode()
    assert (still.track_inventory, still.allow_backorder) == (True, False)
    assert accepted.status_code == 302
    product = Product.objects.get(pk=stocked.pk)
    assert (product.track_inventory, product.allow_backorder, product.version) == (
        False,
        True,
        2,
    )
    event = OutboxEvent.objects.get(aggregate_type="product", aggregate_id="TRK-1")
    assert (event.payload["actor"], event.payload["source"]) == (staff.username, "admin")


@pytest.mark.parametrize("sku", ["low", "history", "receive"])
def test_a_sku_cannot_be_a_word_of_the_stock_routes(sku):
    # given / when / then: /api/v1/stock/low/ could never show a product named "low"
    with pytest.raises(DomainValidationError, match="names a stock route"):
        product_create(sku=sku, name="Reserved")
    assert not Product.objects.filter(sku=sku).exists()
