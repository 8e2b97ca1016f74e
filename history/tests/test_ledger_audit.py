"""What an auditor sees next to each ledger row (history.selectors.ledger_sealed,
event_deliveries, ledger_rows_audited) and in the history JSON: the chain hashes, whether a
seal covers the row and which, and the delivery state of its event."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from history.models import OrderLedgerEntry, OutboxEvent, StockLedgerEntry
from history.relay import outbox_relay
from history.seals import ledger_seal, seal_covering
from history.selectors import (
    PURGED,
    OutboxStatus,
    event_deliveries,
    ledger_rows_audited,
    ledger_sealed,
)
from inventory.services import location_create, stock_receive
from orders.services import order_adjust

ADJUSTMENTS = "/api/v1/adjustments/"
STOCK_HISTORY = "/api/v1/stock/history/"


def history_url(order_id: int) -> str:
    return f"/api/v1/orders/{order_id}/history/"


def _entries(order) -> list[OrderLedgerEntry]:
    return list(OrderLedgerEntry.objects.filter(order=order).order_by("version", "id"))


def _event(entry) -> OutboxEvent:
    return OutboxEvent.objects.get(event_id=entry.event_id)


# --- Seals ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_rows_are_unsealed_until_a_seal_covers_them_and_name_the_seal_that_did(
    make_order, product, audit
):
    # given
    order = make_order(lines={product.sku: 5})

    # when
    before = list(ledger_sealed(OrderLedgerEntry.objects.filter(order=order)))
    first = ledger_seal()
    order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=audit)
    between = list(ledger_sealed(OrderLedgerEntry.objects.filter(order=order).order_by("id")))
    second = ledger_seal()
    after = list(ledger_sealed(OrderLedgerEntry.objects.filter(order=order).order_by("id")))

    # then
    assert [(e.sealed, e.seal_number) for e in before] == [(False, None)]
    assert [(e.sealed, e.seal_number) for e in between] == [(True, first.number), (False, None)]
    assert [(e.sealed, e.seal_number) for e in after] == [
        (True, first.number),
        (True, second.number),
    ]
    assert [e.seal_number for e in after] == [seal_covering(txid=e.txid).number for e in after]


@pytest.mark.django_db(transaction=True)
def test_history_json_says_sealed_after_a_seal(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 5})
    unsealed = api.get(history_url(order.pk)).json()["results"]

    # when
    seal = ledger_seal()
    sealed = api.get(history_url(order.pk)).json()["results"]

    # then
    assert [(r["sealed"], r["seal_number"]) for r in unsealed] == [(False, None)]
    assert [(r["sealed"], r["seal_number"]) for r in sealed] == [(True, seal.number)]


# --- Delivery ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_delivery_is_pending_until_the_relay_publishes_it(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 5})
    pending = api.get(history_url(order.pk)).json()["results"][0]["delivery"]

    # when
    outbox_relay()

    # then
    published = api.get(history_url(order.pk)).json()["results"][0]["delivery"]
    assert pending == {
        "status": "pending",
        "published_at": None,
        "attempts": 0,
        "last_error": "",
        "dead_lettered_at": None,
        "next_attempt_at": None,
    }
    assert published["status"] == "published"
    assert published["published_at"]
    assert published["attempts"] == 0


def test_delivery_states_of_published_retrying_dead_lettered_and_purged_events(
    make_order, product, other_product, audit
):
    # given: four orders, one event each, in four states
    orders = [make_order(lines={sku: 1}) for sku in (product.sku, other_product.sku)]
    orders += [make_order(lines={product.sku: 2}), make_order(lines={other_product.sku: 2})]
    published, retrying, dead, purged = (_entries(order)[0] for order in orders)
    now = timezone.now()
    OutboxEvent.objects.filter(event_id=published.event_id).update(published_at=now)
    OutboxEvent.objects.filter(event_id=retrying.event_id).update(
        attempts=2, last_error="broker away", next_attempt_at=now + timedelta(minutes=1)
    )
    OutboxEvent.objects.filter(event_id=dead.event_id).update(
        attempts=8, last_error="NOT_FOUND - no exchange", dead_lettered_at=now
    )
    OutboxEvent.objects.filter(event_id=purged.event_id).delete()

    # when
    deliveries = event_deliveries(
        event_ids=[e.event_id for e in (published, retrying, dead, purged)]
    )

    # then
    assert deliveries[published.event_id].status == OutboxStatus.PUBLISHED
    assert deliveries[published.event_id].published_at == now
    assert (
        deliveries[retrying.event_id].status,
        deliveries[retrying.event_id].attempts,
        deliveries[retrying.event_id].last_error,
    ) == (OutboxStatus.RETRYING, 2, "broker away")
    assert (
        deliveries[dead.event_id].status,
        deliveries[dead.event_id].dead_lettered_at,
        deliveries[dead.event_id].last_error,
    ) == (OutboxStatus.DEAD_LETTERED, now, "NOT_FOUND - no exchange")
    assert deliveries[purged.event_id].status == PURGED
    assert deliveries[purged.event_id].label == "Published (outbox row purged)"


def test_history_json_shows_a_dead_lettered_event_and_a_purged_one(api, make_order, product):
    # given
    dead, purged = make_order(lines={product.sku: 1}), make_order(lines={product.sku: 2})
    now = timezone.now()
    OutboxEvent.objects.filter(event_id=_entries(dead)[0].event_id).update(
        attempts=8, last_error="NOT_FOUND - no exchange", dead_lettered_at=now
    )
    OutboxEvent.objects.filter(event_id=_entries(purged)[0].event_id).delete()

    # when
    dead_row = api.get(history_url(dead.pk)).json()["results"][0]
    purged_row = api.get(history_url(purged.pk)).json()["results"][0]

    # then
    assert dead_row["delivery"]["status"] == "dead_lettered"
    assert dead_row["delivery"]["attempts"] == 8
    assert dead_row["delivery"]["last_error"] == "NOT_FOUND - no exchange"
    assert dead_row["delivery"]["dead_lettered_at"]
    assert purged_row["delivery"] == {
        "status": "purged",
        "published_at": None,
        "attempts": None,
        "last_error": "",
        "dead_lettered_at": None,
        "next_attempt_at": None,
    }


# --- Hashes in the JSON --------------------------------------------------------------------


def test_history_and_adjustments_carry_the_rows_chain_hashes(api, make_order, product, audit):
    # given
    order = make_order(lines={product.sku: 5})
    order_adjust(order_id=order.pk, deltas={product.sku: 2}, audit=audit)
    entries = _entries(order)

    # when
    history = api.get(history_url(order.pk)).json()["results"]
    adjustments = api.get(ADJUSTMENTS).json()["results"]

    # then
    expected = [(bytes(e.prev_hash).hex(), bytes(e.hash).hex()) for e in entries]
    assert [(r["prev_hash"], r["hash"]) for r in history] == expected
    assert [(r["prev_hash"], r["hash"]) for r in adjustments] == expected
    assert history[1]["prev_hash"] == history[0]["hash"]
    assert all(len(r["hash"]) == 64 for r in history)
    assert all(r["sealed"] is False and r["delivery"]["status"] == "pending" for r in history)


def test_stock_history_carries_hashes_seal_and_delivery(api, product, audit):
    # given
    location_create(code="WH-A", name="Audit")
    stock_receive(sku=product.sku, location="WH-A", quantity=4, audit=audit)
    entry = StockLedgerEntry.objects.get()
    OutboxEvent.objects.filter(event_id=entry.event_id).update(published_at=timezone.now())

    # when
    rows = api.get(STOCK_HISTORY, {"sku": product.sku}).json()["results"]

    # then
    assert len(rows) == 1
    row = rows[0]
    assert row["hash"] == bytes(entry.hash).hex()
    assert row["prev_hash"] == bytes(entry.prev_hash).hex()
    assert (row["sealed"], row["seal_number"]) == (False, None)
    assert row["delivery"]["status"] == "published"
    assert row["delivery"]["published_at"]


# --- Query counts --------------------------------------------------------------------------


def test_auditing_rows_takes_two_queries_however_many_rows(
    make_order, product, audit, django_assert_num_queries
):
    # given
    order = make_order(lines={product.sku: 5})
    for _ in range(15):
        order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=audit)

    # when: the rows (with the latest seal as a subquery), their outbox events
    with django_assert_num_queries(2):
        rows = ledger_rows_audited(OrderLedgerEntry.objects.filter(order=order))

    # then
    assert len(rows) == 16
    assert all(row.delivery.status == OutboxStatus.PENDING for row in rows)


@pytest.mark.django_db(transaction=True)
def test_sealed_rows_are_audited_in_two_queries_too(
    make_order, product, audit, django_assert_num_queries
):
    # given: sealed rows (the covering seal is a subquery of the rows' query)
    order = make_order(lines={product.sku: 5})
    for _ in range(5):
        order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=audit)
        ledger_seal()

    # when
    with django_assert_num_queries(2):
        rows = ledger_rows_audited(OrderLedgerEntry.objects.filter(order=order).order_by("id"))

    # then
    assert [row.seal_number for row in rows] == [1, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("url", ["history", "adjustments", "stock"])
def test_history_pages_take_as_many_queries_for_many_rows_as_for_one(
    api, make_order, product, audit, url
):
    # given
    location_create(code="WH-Q", name="Queries")
    order = make_order(lines={product.sku: 5})
    stock_receive(sku=product.sku, location="WH-Q", quantity=1, audit=audit)
    path = {
        "history": history_url(order.pk),
        "adjustments": ADJUSTMENTS,
        "stock": STOCK_HISTORY,
    }[url]
    api.get(path)  # the caller's token and the like, cached from now on
    with CaptureQueriesContext(connection) as one:
        assert len(api.get(path).json()["results"]) == 1
    for _ in range(20):
        order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=audit)
        stock_receive(sku=product.sku, location="WH-Q", quantity=1, audit=audit)

    # when
    with CaptureQueriesContext(connection) as many:
        response = api.get(path)

    # then: the page, its outbox events (and the order, for its history)
    assert len(response.json()["results"]) == 21
    assert len(many) == len(one) == (3 if url == "history" else 2)
