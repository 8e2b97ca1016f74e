import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from config.errors import (
    CountBelowReserved,
    DomainValidationError,
    InsufficientStock,
    ReservationNotActive,
    TransferNotInTransit,
)
from history.models import OrderLedgerEntry, OutboxEvent, StockLedgerEntry
from inventory.models import Reservation, ReservationStatus, StockLevel
from inventory.services import (
    location_create,
    reservation_cancel,
    reservation_confirm,
    reservation_create,
    reservations_expire,
    stock_adjust,
    stock_count,
    stock_issue,
    stock_receive,
    stock_set_thresholds,
    transfer_cancel,
    transfer_create,
    transfer_receive,
)
from orders.models import Order, OrderLine
from orders.services import order_adjust, order_cancel, order_create, order_fulfil
from tests.audits import coded
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tracked(db):
    return ProductFactory(sku="TRK-1", track_inventory=True)


@pytest.fixture
def main(db):
    return location_create(code="MAIN", name="Main warehouse", priority=10)


@pytest.fixture
def store(db):
    return location_create(code="STORE", name="Corner store", type="store", priority=20)


def _level(product, location) -> StockLevel:
    return StockLevel.objects.get(product=product, location=location)


def _numbers(product, location) -> tuple[int, int, int, int, int]:
    level = _level(product, location)
    return level.on_hand, level.reserved, level.available, level.in_transit, level.backorder


def test_receive_issue_adjust_count_write_a_ledger_row_and_event_each(tracked, main, audit):
    # when
    stock_receive(sku=tracked.sku, location="MAIN", quantity=10, audit=audit)
    stock_issue(sku=tracked.sku, location="MAIN", quantity=3, audit=audit)
    stock_adjust(sku=tracked.sku, location="MAIN", delta=-2, audit=coded(audit))
    stock_count(sku=tracked.sku, location="MAIN", counted=7, audit=coded(audit))

    # then
    assert _numbers(tracked, main) == (7, 0, 7, 0, 0)
    rows = list(StockLedgerEntry.objects.order_by("id"))
    assert [(r.movement, r.delta_on_hand, r.on_hand_after, r.version) for r in rows] == [
        ("receive", 10, 10, 1),
        ("issue", -3, 7, 2),
        ("adjust", -2, 5, 3),
        ("count", 2, 7, 4),
    ]
    events = list(OutboxEvent.objects.order_by("id").values_list("event_type", flat=True))
    assert events == ["stock.received", "stock.issued", "stock.adjusted", "stock.counted"]
    assert rows[0].event_id == OutboxEvent.objects.order_by("id").first().event_id


def test_taking_more_than_available_is_refused_with_the_available_quantity(tracked, main, audit):
    # given
    stock_receive(sku=tracked.sku, location="MAIN", quantity=5, audit=audit)
    reservation_create(sku=tracked.sku, quantity=2, location="MAIN", audit=audit)
    rows = StockLedgerEntry.objects.count()

    # when / then
    for attempt in (
        lambda: stock_issue(sku=tracked.sku, location="MAIN", quantity=4, audit=audit),
        lambda: stock_adjust(sku=tracked.sku, location="MAIN", delta=-4, audit=coded(audit)),
        lambda: reservation_create(sku=tracked.sku, quantity=4, audit=audit),
        lambda: transfer_create(
            sku=tracked.sku, from_location="MAIN", to_location="MAIN2", quantity=1, audit=audit
        ),
    ):
        with pytest.raises((InsufficientStock, DomainValidationError)) as caught:
            attempt()
        if isinstance(caught.value, InsufficientStock):
            assert caught.value.extra["available"] == 3
    assert StockLedgerEntry.objects.count() == rows
    assert _numbers(tracked, main) == (5, 2, 3, 0, 0)


def test_count_below_reserved_is_refused(tracked, main, audit):
    stock_receive(sku=tracked.sku, location="MAIN", quantity=5, audit=audit)
    reservation_create(sku=tracked.sku, quantity=4, audit=audit)
    with pytest.raises(CountBelowReserved):
        stock_count(sku=tracked.sku, location="MAIN", counted=3, audit=coded(audit))


def test_a_reservation_without_location_allocates_by_priority(tracked, main, store, audit):
    # given
    stock_receive(sku=tracked.sku, location="STORE", quantity=10, audit=audit)
    stock_receive(sku=tracked.sku, location="MAIN", quantity=4, audit=audit)

    # when
    reservation = reservation_create(sku=tracked.sku, quantity=6, audit=audit)

    # then: MAIN (priority 10) first, the rest from STORE
    allocations = dict(reservation.allocations.values_list("location__code", "quantity"))
    assert allocations == {"MAIN": 4, "STORE": 2}
    assert _numbers(tracked, main)[:3] == (4, 4, 0)
    assert _numbers(tracked, store)[:3] == (10, 2, 8)


def test_confirm_consumes_and_cancel_releases(tracked, main, audit):
    # given
    stock_receive(sku=tracked.sku, location="MAIN", quantity=10, audit=audit)
    first = reservation_create(sku=tracked.sku, quantity=3, audit=audit)
    second = reservation_create(sku=tracked.sku, quantity=2, audit=audit)

    # when
    reservation_confirm(reservation_id=first.pk, audit=audit)
    reservation_cancel(reservation_id=second.pk, audit=audit)

    # then
    assert _numbers(tracked, main) == (7, 0, 7, 0, 0)
    with pytest.raises(ReservationNotActive):
        reservation_confirm(reservation_id=second.pk, audit=audit)
    types = list(OutboxEvent.objects.order_by("id").values_list("event_type", flat=True))
    assert types[-2:] == ["reservation.confirmed", "reservation.cancelled"]


def test_overdue_reservations_expire_and_release_their_stock(tracked, main, audit):
    # given
    stock_receive(sku=tracked.sku, location="MAIN", quantity=10, audit=audit)
    soon = reservation_create(
        sku=tracked.sku, quantity=4, audit=audit, expires_at=timezone.now() + timedelta(seconds=5)
    )
    later = reservation_create(
        sku=tracked.sku, quantity=1, audit=audit, expires_at=timezone.now() + timedelta(hours=1)
    )

    # when
    expired = reservations_expire(now=timezone.now() + timedelta(minutes=1))

    # then
    assert expired == 1
    soon.refresh_from_db()
    later.refresh_from_db()
    assert (soon.status, later.status) == ("expired", "active")
    assert _numbers(tracked, main)[:3] == (10, 1, 9)
    assert OutboxEvent.objects.filter(event_type="reservation.expired").count() == 1


def test_backorders_record_the_shortfall_apart_from_reserved(main, audit):
    # given
    product = ProductFactory(track_inventory=True, allow_backorder=True)
    stock_receive(sku=product.sku, location="MAIN", quantity=3, audit=audit)

    # when
    reservation = reservation_create(sku=product.sku, quantity=5, audit=audit)

    # then
    assert _numbers(product, main) == (3, 3, 0, 0, 2)
    with pytest.raises(InsufficientStock):
        reservation_confirm(reservation_id=reservation.pk, audit=audit)
    stock_receive(sku=product.sku, location="MAIN", quantity=4, audit=audit)
    reservation_confirm(reservation_id=reservation.pk, audit=audit)
    assert _numbers(product, main) == (2, 0, 2, 0, 0)


def test_a_transfer_ships_at_once_and_lands_on_receipt_or_returns_on_cancel(
    tracked, main, store, audit
):
    # given
    stock_receive(sku=tracked.sku, location="MAIN", quantity=10, audit=audit)

    # when
    landed = transfer_create(
        sku=tracked.sku, from_location="MAIN", to_location="STORE", quantity=4, audit=audit
    )
    assert _numbers(tracked, main)[0] == 6
    assert _numbers(tracked, store)[3] == 4
    transfer_receive(transfer_id=landed.pk, audit=audit)
    returned = transfer_create(
        sku=tracked.sku, from_location="MAIN", to_location="STORE", quantity=2, audit=audit
    )
    transfer_cancel(transfer_id=returned.pk, audit=audit)

    # then
    assert _numbers(tracked, main)[:4] == (6, 0, 6, 0)
    assert _numbers(tracked, store)[:4] == (4, 0, 4, 0)
    with pytest.raises(TransferNotInTransit):
        transfer_receive(transfer_id=returned.pk, audit=audit)


def test_stock_low_is_raised_once_per_crossing(tracked, main, audit):
    # given
    stock_receive(sku=tracked.sku, location="MAIN", quantity=10, audit=audit)
    stock_set_thresholds(
        sku=tracked.sku, location="MAIN", reorder_point=5, safety_stock=2, audit=audit
    )

    # when: falls to 5, then 4, then 3 (one crossing), back to 9, then down to 5 again
    for quantity in (5, 1, 1):
        stock_issue(sku=tracked.sku, location="MAIN", quantity=quantity, audit=audit)
    stock_receive(sku=tracked.sku, location="MAIN", quantity=6, audit=audit)
    stock_issue(sku=tracked.sku, location="MAIN", quantity=4, audit=audit)

    # then
    assert OutboxEvent.objects.filter(event_type="stock.low").count() == 2
    assert _level(tracked, main).is_low


def test_an_order_reserves_its_lines_and_releases_on_decrease_and_cancel(tracked, main, audit):
    # given
    stock_receive(sku=tracked.sku, location="MAIN", quantity=10, audit=audit)

    # when / then
    order = order_create(customer_id=None, reference="", lines={tracked.sku: 6}, audit=audit)
    assert _numbers(tracked, main)[:3] == (10, 6, 4)
    order_adjust(order_id=order.pk, deltas={tracked.sku: 3}, audit=audit)
    assert _numbers(tracked, main)[:3] == (10, 9, 1)
    order_adjust(order_id=order.pk, deltas={tracked.sku: -5}, audit=audit)
    assert _numbers(tracked, main)[:3] == (10, 4, 6)
    order_cancel(order_id=order.pk, audit=audit)
    assert _numbers(tracked, main)[:3] == (10, 0, 10)
    assert Reservation.objects.get(order=order).status == ReservationStatus.CANCELLED


def test_fulfilling_an_order_consumes_its_reservations(tracked, main, audit):
    # given
    stock_receive(sku=tracked.sku, location="MAIN", quantity=10, audit=audit)
    untracked = ProductFactory()
    order = order_create(
        customer_id=None, reference="", lines={tracked.sku: 4, untracked.sku: 2}, audit=audit
    )

    # when
    order = order_fulfil(order_id=order.pk, audit=audit)

    # then
    assert order.status == "fulfilled"
    assert _numbers(tracked, main)[:3] == (6, 0, 6)
    rows = OrderLedgerEntry.objects.filter(order=order, event_type="order.fulfilled")
    assert {(r.sku, r.delta) for r in rows} == {(tracked.sku, 0), (untracked.sku, 0)}


def test_an_order_change_that_cannot_be_reserved_writes_nothing(tracked, main, audit):
    # given
    stock_receive(sku=tracked.sku, location="MAIN", quantity=5, audit=audit)
    order = order_create(customer_id=None, reference="", lines={tracked.sku: 4}, audit=audit)
    before = (
        OrderLedgerEntry.objects.count(),
        StockLedgerEntry.objects.count(),
        OutboxEvent.objects.count(),
        Order.objects.get(pk=order.pk).version,
    )

    # when
    with pytest.raises(InsufficientStock):
        order_adjust(order_id=order.pk, deltas={tracked.sku: 2}, audit=audit)
    with pytest.raises(InsufficientStock):
        order_create(customer_id=None, reference="", lines={tracked.sku: 2}, audit=audit)

    # then
    assert (
        OrderLedgerEntry.objects.count(),
        StockLedgerEntry.objects.count(),
        OutboxEvent.objects.count(),
        Order.objects.get(pk=order.pk).version,
    ) == before
    assert OrderLine.objects.get(order=order).quantity == 4
    assert _numbers(tracked, main)[:3] == (5, 4, 1)


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_reservations_of_one_against_ten_never_oversell(audit):
    # given
    product = ProductFactory(track_inventory=True)
    location_create(code="ONLY", name="Only")
    stock_receive(sku=product.sku, location="ONLY", quantity=10, audit=audit)
    start = threading.Barrier(50)
    outcomes: list[str] = []

    def reserve():
        try:
            start.wait()
            reservation_create(sku=product.sku, quantity=1, audit=audit)
            outcomes.append("ok")
        except InsufficientStock:
            outcomes.append("refused")
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=reserve) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    assert outcomes.count("ok") == 10
    assert outcomes.count("refused") == 40
    level = StockLevel.objects.get(product=product)
    assert (level.on_hand, level.reserved, level.available) == (10, 10, 0)
    assert Reservation.objects.filter(status="active").count() == 10


@pytest.mark.django_db(transaction=True)
def test_orders_touching_the_same_products_in_opposite_order_do_not_deadlock(audit):
    # given: two products in two places, and orders that list them in opposite orders
    a = ProductFactory(track_inventory=True)
    b = ProductFactory(track_inventory=True)
    location_create(code="P1", name="P1", priority=1)
    location_create(code="P2", name="P2", priority=2)
    for product in (a, b):
        for place in ("P1", "P2"):
            stock_receive(sku=product.sku, location=place, quantity=100, audit=audit)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def order_many(first, second):
        try:
            start.wait()
            for _ in range(5):
                order = order_create(
                    customer_id=None, reference="", lines={first: 1, second: 1}, audit=audit
                )
                order_adjust(order_id=order.pk, deltas={second: 2, first: 1}, audit=audit)
        except BaseException as exc:  # noqa: BLE001 - asserted empty below
            errors.append(exc)
        finally:
            connection.close()

    # when
    threads = [
        threading.Thread(target=order_many, args=(a.sku, b.sku) if i % 2 else (b.sku, a.sku))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then: 40 orders; each product got 1+1 units in half of them and 1+2 in the other half
    assert errors == []
    for product in (a, b):
        levels = StockLevel.objects.filter(product=product)
        assert sum(level.reserved for level in levels) == 20 * 2 + 20 * 3
    assert Reservation.objects.filter(status="active").count() == 80


def test_the_expiry_task_releases_overdue_reservations(tracked, main, audit):
    # given
    from inventory.tasks import expire_reservations

    stock_receive(sku=tracked.sku, location="MAIN", quantity=3, audit=audit)
    reservation = reservation_create(
        sku=tracked.sku, quantity=2, audit=audit, expires_at=timezone.now() + timedelta(seconds=1)
    )
    Reservation.objects.filter(pk=reservation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    # when
    expired = expire_reservations.apply().get()

    # then
    assert expired == 1
    assert _numbers(tracked, main)[:3] == (3, 0, 3)


def test_a_backordered_issue_is_filled_from_the_next_receipt(main, audit):
    # given: 3 on hand, 5 issued, so 2 are owed; a reservation backorders 1 more
    product = ProductFactory(track_inventory=True, allow_backorder=True)
    stock_receive(sku=product.sku, location="MAIN", quantity=3, audit=audit)
    stock_issue(sku=product.sku, location="MAIN", quantity=5, audit=audit)
    reservation_create(sku=product.sku, quantity=1, audit=audit)
    assert _numbers(product, main) == (0, 0, 0, 0, 3)

    # when
    stock_receive(sku=product.sku, location="MAIN", quantity=10, audit=audit)

    # then: the 2 owed units leave at once; the reservation's backorder stays until confirm
    assert _numbers(product, main) == (8, 0, 8, 0, 1)
    row = StockLedgerEntry.objects.order_by("id").last()
    assert (row.delta_on_hand, row.delta_backorder) == (8, -2)


def test_an_order_reservation_cannot_be_settled_behind_the_order(tracked, main, audit):
    # given
    from config.errors import ReservationBelongsToOrder

    stock_receive(sku=tracked.sku, location="MAIN", quantity=5, audit=audit)
    order = order_create(customer_id=None, reference="", lines={tracked.sku: 2}, audit=audit)
    reservation = Reservation.objects.get(order=order)

    # when / then
    with pytest.raises(ReservationBelongsToOrder):
        reservation_confirm(reservation_id=reservation.pk, audit=audit)
    with pytest.raises(ReservationBelongsToOrder):
        reservation_cancel(reservation_id=reservation.pk, audit=audit)
    assert _numbers(tracked, main)[:3] == (5, 2, 3)
