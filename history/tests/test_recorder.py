"""history.recorder.changes_record: the one function that writes ledger rows and outbox
events, together with the caller's state changes, in one statement."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from history.cache import cache_fill, cache_read
from history.chain import GENESIS
from history.events import Event, LineChange, StockChange
from history.models import OrderLedgerEntry, OutboxEvent, StockLedgerEntry
from history.recorder import StateWrite, changes_record
from inventory.models import Location
from orders.models import Order, OrderLine
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def _order_event(order, version: int, changes, event_type="order.quantity_adjusted") -> Event:
    return Event(
        aggregate_type="order",
        aggregate_id=str(order.pk),
        version=version,
        event_type=event_type,
        payload={"order_id": order.pk, "aggregate_version": version},
        lines=changes,
    )


def _heads(order, *places) -> dict:
    """The chain heads the recorder needs: the order's as stored, new places' genesis."""
    head = bytes(Order.objects.get(pk=order.pk).ledger_head)
    return {("order", order.pk): head, **{("stock", *place): GENESIS for place in places}}


def _counts() -> tuple[int, int, int]:
    return (
        OrderLedgerEntry.objects.count(),
        StockLedgerEntry.objects.count(),
        OutboxEvent.objects.count(),
    )


def test_order_and_stock_rows_and_their_events_are_written_in_input_order(
    make_order, product, audit, django_assert_num_queries
):
    # given: an order, a stock place, and three events: two on the order, one on stock
    order = make_order(lines={product.sku: 10})
    location = Location.objects.create(code="WH-R", name="Recorder")
    other = ProductFactory(sku="REC-2")
    stock = StockChange(
        product_id=other.pk,
        sku=other.sku,
        location_id=location.pk,
        location_code=location.code,
        movement="receive",
        version=1,
        on_hand=5,
        reserved=0,
        in_transit=0,
        backorder=0,
        on_hand_after=5,
        reserved_after=0,
        in_transit_after=0,
        backorder_after=0,
    )
    events = [
        _order_event(order, 2, [LineChange(product.pk, product.sku, 10, 12)]),
        Event(
            aggregate_type="stock",
            aggregate_id="REC-2@WH-R",
            version=1,
            event_type="stock.received",
            payload={"sku": "REC-2"},
            stock=[stock],
            reference_type="order",
            reference_id=str(order.pk),
        ),
        _order_event(order, 3, [LineChange(product.pk, product.sku, 12, 11)]),
    ]

    heads = _heads(order, (other.pk, location.pk))

    # when: one statement
    with django_assert_num_queries(1):
        changes_record(events=events, audit=audit, now=timezone.now(), heads=heads)

    # then
    ledger = list(
        OrderLedgerEntry.objects.filter(order=order, version__gt=1)
        .order_by("id")
        .values_list("event_id", "version", "delta", "actor", "source", "reason")
    )
    assert ledger == [
        (events[0].event_id, 2, 2, "tester", "system", "test"),
        (events[2].event_id, 3, -1, "tester", "system", "test"),
    ]
    row = StockLedgerEntry.objects.get()
    assert (row.event_id, row.sku, row.location_code, row.delta_on_hand, row.on_hand_after) == (
        events[1].event_id,
        "REC-2",
        "WH-R",
        5,
        5,
    )
    assert (row.reference_type, row.reference_id, row.actor) == ("order", str(order.pk), "tester")
    outbox = list(OutboxEvent.objects.order_by("id").values_list("event_id", "aggregate_type"))[-3:]
    assert outbox == [(e.event_id, e.aggregate_type) for e in events]
    assert OutboxEvent.objects.get(event_id=events[1].event_id).payload == {"sku": "REC-2"}


def test_state_writes_run_in_the_same_statement_and_fail_with_it(make_order, product, audit):
    # given: a state change of the line, and an event whose ledger row collides with one
    # already written (same order, version and product; and time, the partition key, which
    # the unique constraint includes: history migration 0017)
    order = make_order(lines={product.sku: 10})
    written_at = OrderLedgerEntry.objects.get(order=order).occurred_at
    line = OrderLine.objects.get(order=order)
    before = _counts()
    line_to_11 = StateWrite(
        f"UPDATE {OrderLine._meta.db_table} SET quantity = %s WHERE id = %s", [11, line.pk]
    )
    clash = _order_event(order, 1, [LineChange(product.pk, product.sku, 10, 11)])

    # when
    with pytest.raises(IntegrityError), transaction.atomic():
        changes_record(
            events=[clash],
            audit=audit,
            now=written_at,
            state=[line_to_11],
            heads=_heads(order),
        )

    # then: neither the line, the ledger nor the outbox moved
    assert OrderLine.objects.get(pk=line.pk).quantity == 10
    assert _counts() == before

    # and without the clash, the state and the record land together
    bump = StateWrite(f"UPDATE {Order._meta.db_table} SET version = 2 WHERE id = %s", [order.pk])
    changes_record(
        events=[_order_event(order, 2, [LineChange(product.pk, product.sku, 10, 11)])],
        audit=audit,
        now=timezone.now(),
        state=[line_to_11, bump],
        heads=_heads(order),
    )
    assert OrderLine.objects.get(pk=line.pk).quantity == 11
    assert Order.objects.get(pk=order.pk).version == 2
    assert _counts() == (before[0] + 1, before[1], before[2] + 1)


def test_an_event_without_ledger_rows_writes_only_its_outbox_row(audit):
    # given
    before = _counts()
    event = Event(
        aggregate_type="stock",
        aggregate_id="X@Y",
        version=4,
        event_type="stock.low",
        payload={"available": 1},
    )

    # when
    changes_record(events=[event], audit=audit, now=timezone.now())

    # then
    assert _counts() == (before[0], before[1], before[2] + 1)
    row = OutboxEvent.objects.get(event_id=event.event_id)
    assert (row.aggregate_type, row.aggregate_id, row.aggregate_version) == ("stock", "X@Y", 4)


def test_on_commit_the_recorded_orders_cache_entries_become_tombstones(
    make_order, product, audit, django_capture_on_commit_callbacks
):
    # given: the order is cached at version 1
    order = make_order(lines={product.sku: 10})
    cache_fill("order", str(order.pk), 1, b'{"version": 1}')
    assert cache_read("order", str(order.pk)).status == "hit"

    # when
    with django_capture_on_commit_callbacks(execute=True):
        changes_record(
            events=[_order_event(order, 2, [LineChange(product.pk, product.sku, 10, 11)])],
            audit=audit,
            now=timezone.now(),
            heads=_heads(order),
        )

    # then: a reader holding version 1 can no longer fill the cache
    assert cache_read("order", str(order.pk)).status == "miss"
    cache_fill("order", str(order.pk), 1, b'{"version": 1}')
    assert cache_read("order", str(order.pk)).status == "miss"


def test_the_recorded_rows_carry_the_writing_transaction_id(make_order, product, audit):
    # given
    order = make_order(lines={product.sku: 10})

    # when
    with transaction.atomic():
        changes_record(
            events=[_order_event(order, 2, [LineChange(product.pk, product.sku, 10, 11)])],
            audit=audit,
            now=timezone.now(),
            heads=_heads(order),
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            (txid,) = cursor.fetchone()

    # then: the projector's checkpoint relies on it
    assert OrderLedgerEntry.objects.get(order=order, version=2).txid == txid
