"""orders.planner: one planner for every order command. These tests drive it directly; the
services' and the API's tests drive it through their doors."""

import pytest
from django.db import transaction

from config.errors import (
    DomainValidationError,
    NotFound,
    OrderNotEditable,
    QuantityOutOfRange,
    UnknownSku,
    VersionConflict,
)
from history.models import OrderLedgerEntry, OutboxEvent
from inventory.models import Reservation, StockLevel
from inventory.services import location_create, stock_receive
from orders.models import Order, OrderLine, OrderStatus
from orders.planner import LineRequest, OrderCommand, OutcomeStatus, order_commands_plan
from orders.selectors import order_ledger_drift
from orders.services import order_cancel, order_create
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def _plan_and_record(commands, audit, *, atomic: bool = True):
    with transaction.atomic():
        plan = order_commands_plan(commands)
        plan.reserve_stock(audit=audit, atomic=atomic)
        plan.record(audit=audit)
    return plan


def _ledger(order_id: int) -> list[tuple]:
    return list(
        OrderLedgerEntry.objects.filter(order_id=order_id)
        .order_by("id")
        .values_list("version", "sku", "event_type", "quantity_before", "quantity_after")
    )


def _events(order_id: int) -> list[tuple]:
    return list(
        OutboxEvent.objects.filter(aggregate_type="order", aggregate_id=str(order_id))
        .order_by("id")
        .values_list("aggregate_version", "event_type", "payload__status")
    )


def test_each_rule_is_checked_in_a_fixed_order_and_the_first_failure_is_reported(
    make_order, product, audit
):
    # given: an order at version 2 and a cancelled one
    order = make_order(lines={product.sku: 3})
    closed = make_order(lines={product.sku: 3})
    order_cancel(order_id=closed.pk, audit=audit)
    _plan_and_record([OrderCommand(order.pk, [LineRequest(product.sku, delta=1)])], audit)
    stale_and_unknown = [LineRequest("NOPE", delta=1)]

    # when: each command breaks its rule and every rule after it
    plan = order_commands_plan(
        [
            OrderCommand(987654, stale_and_unknown, expected_version=1),
            OrderCommand(order.pk, stale_and_unknown, expected_version=1),
            OrderCommand(closed.pk, stale_and_unknown),
            OrderCommand(
                order.pk, [LineRequest(product.sku, delta=-9), LineRequest("NOPE", delta=1)]
            ),
            OrderCommand(order.pk, [LineRequest(product.sku, quantity=100_000_001)]),
        ]
    )

    # then
    errors = [type(outcome.error) for outcome in plan.outcomes]
    assert errors == [NotFound, VersionConflict, OrderNotEditable, UnknownSku, QuantityOutOfRange]
    assert plan.outcomes[3].error.detail == "Unknown sku: NOPE."
    assert plan.outcomes[4].error.detail == (
        "SKU-1 cannot be set to 100000001; a quantity must stay between 0 and 100000000."
    )
    assert {outcome.status for outcome in plan.outcomes} == {OutcomeStatus.REFUSED}
    assert plan.applied == []


def test_a_line_with_both_or_neither_quantity_and_delta_refuses_the_whole_call(make_order, product):
    # given
    order = make_order(lines={product.sku: 3})

    # when / then
    for malformed in (LineRequest(product.sku), LineRequest(product.sku, quantity=1, delta=1)):
        with pytest.raises(DomainValidationError) as refused:
            order_commands_plan(
                [
                    OrderCommand(order.pk, [LineRequest(product.sku, delta=1)]),
                    OrderCommand(order.pk, [malformed]),
                ]
            )
        assert (refused.value.field, str(refused.value.code)) == (
            "items.1.quantity",
            "quantity_or_delta",
        )


def test_a_batch_locks_its_orders_in_one_statement_and_reads_in_one_more(
    make_order, product, django_assert_num_queries
):
    # given: three orders, named out of order and more than once
    orders = [make_order(lines={product.sku: 5}) for _ in range(3)]
    new = ProductFactory(sku="NEW-1")
    commands = [
        OrderCommand(orders[2].pk, [LineRequest(product.sku, delta=1)]),
        OrderCommand(orders[0].pk, [LineRequest(new.sku, quantity=2)]),
        OrderCommand(orders[1].pk, [LineRequest(product.sku, quantity=0)]),
        OrderCommand(orders[2].pk, [LineRequest(product.sku, delta=1)]),
    ]

    # when
    with django_assert_num_queries(2) as queries:
        plan = order_commands_plan(commands)

    # then: the lock names every order once, in id order; the read holds the products
    lock, read = (query["sql"] for query in queries.captured_queries)
    assert lock.endswith("ORDER BY id FOR UPDATE")
    assert read.endswith("FOR KEY SHARE OF p")
    assert [o.status for o in plan.outcomes] == [OutcomeStatus.APPLIED] * 4
    assert [o.version for o in plan.outcomes] == [2, 2, 2, 3]


def test_a_batch_that_also_closes_orders_reads_their_lines_in_a_third_statement(
    make_order, product, django_assert_num_queries
):
    # given
    changed, closed = make_order(lines={product.sku: 5}), make_order(lines={product.sku: 5})
    commands = [
        OrderCommand(changed.pk, [LineRequest(product.sku, delta=1)]),
        OrderCommand(closed.pk, close=OrderStatus.CANCELLED),
    ]

    # when
    with django_assert_num_queries(3):
        plan = order_commands_plan(commands)

    # then
    assert [(o.status, o.version) for o in plan.outcomes] == [
        (OutcomeStatus.APPLIED, 2),
        (OutcomeStatus.APPLIED, 2),
    ]
    assert [(c.before, c.after) for c in plan.outcomes[1].changes] == [(5, 0)]


def test_closing_and_changing_commands_of_one_batch_record_like_separate_commands(
    make_order, product, audit
):
    # given
    other, _ = ProductFactory(sku="OTHER-1"), ProductFactory(sku="NEW-9")
    a = make_order(lines={product.sku: 5})
    b = make_order(lines={product.sku: 5, other.sku: 2})

    # when: a is changed, then b gains a line and is fulfilled, then a is cancelled
    _plan_and_record(
        [
            OrderCommand(a.pk, [LineRequest(product.sku, quantity=8)]),
            OrderCommand(b.pk, [LineRequest("NEW-9", delta=0), LineRequest(other.sku, delta=1)]),
            OrderCommand(b.pk, close=OrderStatus.FULFILLED),
            OrderCommand(a.pk, close=OrderStatus.CANCELLED),
        ],
        audit,
    )

    # then
    assert _ledger(a.pk) == [
        (1, product.sku, "order.created", 0, 5),
        (2, product.sku, "order.quantity_adjusted", 5, 8),
        (3, product.sku, "order.cancelled", 8, 0),
    ]
    assert _ledger(b.pk)[2:] == [
        (2, other.sku, "order.quantity_adjusted", 2, 3),
        (3, product.sku, "order.fulfilled", 5, 5),
        (3, other.sku, "order.fulfilled", 3, 3),
    ]
    assert _events(a.pk) == [
        (1, "order.created", "open"),
        (2, "order.quantity_adjusted", "open"),
        (3, "order.cancelled", "cancelled"),
    ]
    assert _events(b.pk)[1:] == [
        (2, "order.quantity_adjusted", "open"),
        (3, "order.fulfilled", "fulfilled"),
    ]
    states = Order.objects.filter(pk__in=[a.pk, b.pk]).values_list("id", "status", "version")
    assert {pk: (status, version) for pk, status, version in states} == {
        a.pk: ("cancelled", 3),
        b.pk: ("fulfilled", 3),
    }
    # a line asked for with a zero change is not added
    assert not OrderLine.objects.filter(order=b, product__sku="NEW-9").exists()
    assert list(order_ledger_drift(check_snapshots=False)) == []


def test_a_refusal_for_stock_refuses_every_command_of_that_order_only(audit):
    # given: 10 units of a tracked product, and two orders holding 4 each
    ProductFactory(sku="TRK-1", track_inventory=True)
    location_create(code="WH-1", name="Main")
    stock_receive(sku="TRK-1", location="WH-1", quantity=10, audit=audit)
    first = order_create(customer_id=None, reference="", lines={"TRK-1": 4}, audit=audit)
    second = order_create(customer_id=None, reference="", lines={"TRK-1": 4}, audit=audit)

    # when: the first order wants 3 more (only 2 are available), the second gives 1 back
    plan = _plan_and_record(
        [
            OrderCommand(first.pk, [LineRequest("TRK-1", delta=1)]),
            OrderCommand(second.pk, [LineRequest("TRK-1", delta=-1)]),
            OrderCommand(first.pk, [LineRequest("TRK-1", delta=2)]),
        ],
        audit,
        atomic=False,
    )

    # then
    assert [o.status for o in plan.outcomes] == [
        OutcomeStatus.REFUSED,
        OutcomeStatus.APPLIED,
        OutcomeStatus.REFUSED,
    ]
    assert {str(o.error.code) for o in plan.outcomes if o.error} == {"insufficient_stock"}
    assert Order.objects.get(pk=first.pk).version == 1
    assert Order.objects.get(pk=second.pk).version == 2
    level = StockLevel.objects.get(product__sku="TRK-1")
    assert (level.on_hand, level.reserved) == (10, 7)
    assert Reservation.objects.get(order=first).quantity == 4
