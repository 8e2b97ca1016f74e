import threading

import pytest
from django.db import connection, transaction
from django.db.utils import IntegrityError

from config.errors import (
    DomainValidationError,
    NotFound,
    OrderNotEditable,
    QuantityOutOfRange,
    VersionConflict,
)
from history.models import OrderLedgerEntry, OutboxEvent
from orders.models import Order, OrderLine, OrderStatus
from orders.services import order_adjust, order_cancel, order_create, order_set_quantities
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def _quantities(order) -> dict[str, int]:
    return dict(OrderLine.objects.filter(order=order).values_list("product__sku", "quantity"))


def _counts() -> tuple[int, int, int, int]:
    return (
        Order.objects.count(),
        OrderLine.objects.count(),
        OrderLedgerEntry.objects.count(),
        OutboxEvent.objects.count(),
    )


def test_seed_scenario_records_one_plus_twenty_adjustment_at_version_2(make_order, product, audit):
    # given
    order = make_order(lines={product.sku: 100})

    # when
    order = order_set_quantities(
        order_id=order.pk, quantities={product.sku: 120}, expected_version=1, audit=audit
    )

    # then
    adjustments = list(
        OrderLedgerEntry.objects.filter(order=order, event_type="order.quantity_adjusted")
    )
    assert len(adjustments) == 1
    assert (adjustments[0].version, adjustments[0].delta) == (2, 20)
    assert (adjustments[0].quantity_before, adjustments[0].quantity_after) == (100, 120)
    assert order.version == 2
    assert OutboxEvent.objects.filter(aggregate_id=str(order.pk)).count() == 2


def test_create_writes_one_row_per_line_from_zero_and_one_event(product, other_product, audit):
    # when
    order = order_create(
        customer_id=None,
        reference="PO-1",
        lines={product.sku: 5, other_product.sku: 7},
        audit=audit,
    )

    # then
    rows = list(OrderLedgerEntry.objects.filter(order=order).order_by("sku"))
    assert [(r.sku, r.quantity_before, r.quantity_after, r.delta) for r in rows] == [
        ("SKU-1", 0, 5, 5),
        ("SKU-2", 0, 7, 7),
    ]
    assert {r.version for r in rows} == {1}
    assert {r.event_type for r in rows} == {"order.created"}
    event = OutboxEvent.objects.get(aggregate_id=str(order.pk))
    assert event.event_id == rows[0].event_id == rows[1].event_id
    assert event.event_type == "order.created"
    assert event.aggregate_version == 1
    assert event.published_at is None
    assert sorted(c["sku"] for c in event.payload["changes"]) == ["SKU-1", "SKU-2"]


def test_ledger_rows_carry_the_full_audit(make_order, product, audit):
    # given
    from history.audit import Audit
    from history.models import Source

    order = make_order(lines={product.sku: 10})
    who = Audit(
        actor="carol",
        source=Source.API,
        reason="customer called",
        correlation_id="req-42",
        idempotency_key="key-1",
    )

    # when
    order_adjust(order_id=order.pk, deltas={product.sku: -3}, audit=who)

    # then
    row = OrderLedgerEntry.objects.get(order=order, version=2)
    assert (row.actor, row.source, row.reason) == ("carol", "api", "customer called")
    assert (row.correlation_id, row.idempotency_key) == ("req-42", "key-1")
    assert (row.delta, row.quantity_before, row.quantity_after) == (-3, 10, 7)


def test_unchanged_lines_are_skipped_and_a_no_op_bumps_nothing(make_order, product, audit):
    # given
    other = ProductFactory()
    order = make_order(lines={product.sku: 10, other.sku: 4})
    before = _counts()

    # when
    order = order_set_quantities(
        order_id=order.pk, quantities={product.sku: 10, other.sku: 4}, audit=audit
    )
    order_adjust(order_id=order.pk, deltas={product.sku: 0}, audit=audit)

    # then
    assert order.version == 1
    assert Order.objects.get(pk=order.pk).version == 1
    assert _counts() == before


def test_only_changed_lines_get_rows_and_version_bumps_once(make_order, product, audit):
    # given
    other = ProductFactory()
    third = ProductFactory()
    order = make_order(lines={product.sku: 10, other.sku: 4})

    # when
    order = order_set_quantities(
        order_id=order.pk,
        quantities={product.sku: 10, other.sku: 6, third.sku: 2},
        audit=audit,
    )

    # then
    assert order.version == 2
    rows = OrderLedgerEntry.objects.filter(order=order, version=2).order_by("sku")
    assert {(r.sku, r.delta) for r in rows} == {(other.sku, 2), (third.sku, 2)}
    assert _quantities(order) == {product.sku: 10, other.sku: 6, third.sku: 2}
    assert OutboxEvent.objects.filter(aggregate_id=str(order.pk), aggregate_version=2).count() == 1


def test_stale_expected_version_is_refused_and_writes_nothing(make_order, product, audit):
    # given
    order = make_order(lines={product.sku: 10})
    order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=audit)
    before = _counts()

    # when
    with pytest.raises(VersionConflict) as caught:
        order_set_quantities(
            order_id=order.pk, quantities={product.sku: 50}, expected_version=1, audit=audit
        )

    # then
    assert caught.value.current == 2
    assert _counts() == before
    assert _quantities(order) == {product.sku: 11}


def test_adjust_below_zero_is_refused_and_writes_nothing(make_order, product, audit):
    # given
    order = make_order(lines={product.sku: 3})
    before = _counts()

    # when / then
    with pytest.raises(QuantityOutOfRange):
        order_adjust(order_id=order.pk, deltas={product.sku: -4}, audit=audit)
    assert _counts() == before


def test_unknown_sku_and_order_are_refused(make_order, product, audit):
    order = make_order(lines={product.sku: 3})
    with pytest.raises(DomainValidationError, match="NOPE"):
        order_set_quantities(order_id=order.pk, quantities={"NOPE": 1}, audit=audit)
    with pytest.raises(DomainValidationError, match="NOPE"):
        order_create(customer_id=None, reference="", lines={"NOPE": 1}, audit=audit)
    with pytest.raises(NotFound):
        order_adjust(order_id=order.pk + 1000, deltas={product.sku: 1}, audit=audit)
    with pytest.raises(DomainValidationError):
        order_create(customer_id=None, reference="", lines={}, audit=audit)
    with pytest.raises(DomainValidationError, match="Customer"):
        order_create(customer_id=999999, reference="", lines={product.sku: 1}, audit=audit)


def test_cancel_zeroes_every_line_records_it_and_freezes_the_order(make_order, product, audit):
    # given
    other = ProductFactory()
    order = make_order(lines={product.sku: 10, other.sku: 0})

    # when
    order = order_cancel(order_id=order.pk, audit=audit)

    # then
    assert order.status == OrderStatus.CANCELLED
    assert order.version == 2
    rows = OrderLedgerEntry.objects.filter(order=order, version=2)
    assert {(r.sku, r.quantity_before, r.quantity_after) for r in rows} == {
        (product.sku, 10, 0),
        (other.sku, 0, 0),
    }
    assert {r.event_type for r in rows} == {"order.cancelled"}
    assert OutboxEvent.objects.get(aggregate_version=2, aggregate_id=str(order.pk)).event_type == (
        "order.cancelled"
    )
    with pytest.raises(OrderNotEditable):
        order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=audit)
    with pytest.raises(OrderNotEditable):
        order_cancel(order_id=order.pk, audit=audit)


def test_set_quantities_takes_three_statements(
    make_order, product, audit, django_assert_num_queries
):
    # given
    order = make_order(lines={product.sku: 10})

    # then: lock, read lines, one statement for state + ledger + outbox (plus the savepoint
    # pair of the test transaction)
    with django_assert_num_queries(5):
        order_set_quantities(order_id=order.pk, quantities={product.sku: 11}, audit=audit)


def test_database_refuses_negative_quantities_and_duplicate_lines(make_order, product):
    order = make_order(lines={product.sku: 1})
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderLine.objects.filter(order=order).update(quantity=-1)
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderLine.objects.create(order=order, product=product, quantity=1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_adjustments_serialize_with_contiguous_versions(audit):
    # given
    product = ProductFactory()
    order = order_create(customer_id=None, reference="", lines={product.sku: 100}, audit=audit)
    workers, per_worker = 8, 5
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def adjust_many():
        try:
            start.wait()
            for _ in range(per_worker):
                order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=audit)
        except BaseException as exc:  # noqa: BLE001 - asserted empty below
            errors.append(exc)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=adjust_many) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    n = workers * per_worker
    assert errors == []
    order.refresh_from_db()
    assert _quantities(order) == {product.sku: 100 + n}
    assert order.version == 1 + n
    versions = list(
        OrderLedgerEntry.objects.filter(order=order)
        .order_by("version")
        .values_list("version", flat=True)
    )
    assert versions == list(range(1, n + 2))
    afters = list(
        OrderLedgerEntry.objects.filter(order=order)
        .order_by("version")
        .values_list("quantity_after", flat=True)
    )
    assert afters == list(range(100, 100 + n + 1))
    event_versions = list(
        OutboxEvent.objects.filter(aggregate_id=str(order.pk))
        .order_by("id")
        .values_list("aggregate_version", flat=True)
    )
    assert event_versions == list(range(1, n + 2))


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_with_the_same_expected_version_exactly_one_wins(audit):
    # given
    product = ProductFactory()
    order = order_create(customer_id=None, reference="", lines={product.sku: 10}, audit=audit)
    workers = 6
    start = threading.Barrier(workers)
    outcomes: list[str] = []

    def set_quantity(target: int):
        try:
            start.wait()
            order_set_quantities(
                order_id=order.pk, quantities={product.sku: target}, expected_version=1, audit=audit
            )
            outcomes.append("ok")
        except VersionConflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=set_quantity, args=(20 + i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    assert sorted(outcomes) == ["conflict"] * (workers - 1) + ["ok"]
    order.refresh_from_db()
    assert order.version == 2
    assert OrderLedgerEntry.objects.filter(order=order, version=2).count() == 1
