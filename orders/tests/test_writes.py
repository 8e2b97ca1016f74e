import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from history.events import LineChange
from history.models import OrderEventType, OrderLedgerEntry, OutboxEvent
from history.selectors import ledger_drift
from orders import writes
from orders.models import Order, OrderLine
from orders.services import order_adjust, order_cancel, order_set_quantities
from orders.writes import OrderEvent, order_changes_write
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def _rows(order_id: int) -> dict:
    order = Order.objects.get(pk=order_id)
    return {
        "order": (order.version, order.status),
        "lines": sorted(
            OrderLine.objects.filter(order_id=order_id).values_list("product__sku", "quantity")
        ),
        "ledger": list(
            OrderLedgerEntry.objects.filter(order_id=order_id)
            .order_by("id")
            .values_list("version", "sku", "event_type", "quantity_before", "quantity_after")
        ),
        "outbox": [
            (e.aggregate_version, e.event_type, [c["sku"] for c in e.payload["changes"]])
            for e in OutboxEvent.objects.filter(aggregate_id=str(order_id)).order_by("id")
        ],
    }


def _commands(make_order, audit, run: str) -> int:
    old, new = ProductFactory(sku=f"OLD-{run}"), ProductFactory(sku=f"NEW-{run}")
    order = make_order(lines={old.sku: 10})
    order_set_quantities(order_id=order.pk, quantities={old.sku: 12, new.sku: 3}, audit=audit)
    order_adjust(order_id=order.pk, deltas={new.sku: -1}, audit=audit)
    order_cancel(order_id=order.pk, audit=audit)
    return order.pk


def test_the_orm_writer_for_sqlite_writes_what_the_postgresql_statement_writes(
    make_order, audit, monkeypatch
):
    # given: the same commands, once through each writer
    by_statement = _rows(_commands(make_order, audit, "A"))
    monkeypatch.setattr(writes, "_write_postgresql", writes._write_portable)

    # when
    by_orm = _rows(_commands(make_order, audit, "B"))

    # then
    assert str(by_orm).replace("-B", "-A") == str(by_statement)
    assert by_statement["order"] == (4, "cancelled")
    assert by_statement["ledger"] == [
        (1, "OLD-A", "order.created", 0, 10),
        (2, "OLD-A", "order.quantity_adjusted", 10, 12),
        (2, "NEW-A", "order.quantity_adjusted", 0, 3),
        (3, "NEW-A", "order.quantity_adjusted", 3, 2),
        (4, "OLD-A", "order.cancelled", 12, 0),
        (4, "NEW-A", "order.cancelled", 2, 0),
    ]
    assert [v for v, *_ in by_statement["outbox"]] == [1, 2, 3, 4]
    assert list(ledger_drift(check_snapshots=False)) == []


def test_the_write_is_all_or_nothing(make_order, product, audit):
    # given: an event whose ledger row collides with one already written (same order,
    # version and product), after valid state and line changes in the same statement
    order = make_order(lines={product.sku: 10})
    line = OrderLine.objects.get(order=order)
    before = _rows(order.pk)
    clash = OrderEvent(
        order_id=order.pk,
        version=1,
        status="open",
        reference=order.reference,
        customer_id=None,
        event_type=OrderEventType.QUANTITY_ADJUSTED,
        changes=[LineChange(product.pk, product.sku, 10, 11)],
    )

    # when
    with pytest.raises(IntegrityError), transaction.atomic():
        order_changes_write(
            events=[clash],
            updated_lines={line.pk: 11},
            new_lines={},
            audit=audit,
            now=timezone.now(),
        )

    # then: neither the order, the line nor the outbox moved
    assert _rows(order.pk) == before
