"""The hash chains, written by every path (single and bulk order commands, stock moves,
transfers, reservations, tracked order lines), stay linear under concurrent writers, and
seals taken while writes commit cover every row exactly once. Real threads, real PostgreSQL."""

import threading

import pytest
from django.db import connection

from history.audit import Audit
from history.models import LedgerSeal, OrderLedgerEntry, Source, StockLedgerEntry
from history.seals import ledger_seal, seal_problems
from inventory.selectors import stock_chain_problems
from inventory.services import (
    location_create,
    reservation_cancel,
    reservation_create,
    stock_adjust,
    stock_count,
    stock_receive,
    transfer_create,
    transfer_receive,
)
from orders.planner import LineRequest, OrderCommand
from orders.selectors import order_chain_problems
from orders.services import (
    order_adjust,
    order_adjustments_bulk,
    order_cancel,
    order_create,
    order_set_quantities,
)
from tests.factories import ProductFactory

AUDIT = Audit(actor="chain", source=Source.API, reason="test", reason_code="correction")


def _no_breaks() -> None:
    assert list(order_chain_problems()) == []
    assert list(stock_chain_problems()) == []


@pytest.mark.django_db
def test_every_write_path_extends_the_chains_it_touches():
    # given: a tracked product with stock in two places and an untracked one
    ProductFactory(sku="CH-T", track_inventory=True)
    ProductFactory(sku="CH-L", track_inventory=False)
    location_create(code="CH-A", name="A", priority=1)
    location_create(code="CH-B", name="B", priority=2)
    stock_receive(sku="CH-T", location="CH-A", quantity=100, audit=AUDIT)

    # when: every kind of change, single and bulk
    order = order_create(customer_id=None, reference="c", lines={"CH-T": 5, "CH-L": 2}, audit=AUDIT)
    order_set_quantities(order_id=order.pk, quantities={"CH-T": 8}, audit=AUDIT)
    order_adjust(order_id=order.pk, deltas={"CH-L": 3}, audit=AUDIT)
    other = order_create(customer_id=None, reference="d", lines={"CH-L": 1}, audit=AUDIT)
    order_adjustments_bulk(
        commands=[
            OrderCommand(order.pk, [LineRequest("CH-T", delta=-1)]),
            OrderCommand(other.pk, [LineRequest("CH-L", quantity=9)]),
            OrderCommand(order.pk, [LineRequest("CH-L", delta=1)]),  # the same order twice
        ],
        atomic=True,
        audit=AUDIT,
    )
    stock_adjust(sku="CH-T", location="CH-A", delta=-2, audit=AUDIT)
    stock_count(sku="CH-T", location="CH-A", counted=80, audit=AUDIT)
    transfer = transfer_create(
        sku="CH-T", from_location="CH-A", to_location="CH-B", quantity=10, audit=AUDIT
    )
    transfer_receive(transfer_id=transfer.pk, audit=AUDIT)
    reservation = reservation_create(sku="CH-T", quantity=4, audit=AUDIT)
    reservation_cancel(reservation_id=reservation.pk, audit=AUDIT)
    order_cancel(order_id=order.pk, audit=AUDIT)

    # then: every chain links from genesis to its head, whatever wrote it
    assert OrderLedgerEntry.objects.count() >= 8
    assert StockLedgerEntry.objects.filter(sku="CH-T").count() >= 8
    _no_breaks()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_one_order_and_one_level_keep_each_chain_linear():
    # given
    ProductFactory(sku="CH-C", track_inventory=True)
    location_create(code="CH-C", name="C")
    stock_receive(sku="CH-C", location="CH-C", quantity=1_000, audit=AUDIT)
    order = order_create(customer_id=None, reference="c", lines={"CH-C": 1}, audit=AUDIT)
    workers, each = 4, 10
    start = threading.Barrier(workers)
    failures = []

    def write(n: int) -> None:
        try:
            start.wait()
            for _ in range(each):
                if n % 2:
                    order_adjust(order_id=order.pk, deltas={"CH-C": 1}, audit=AUDIT)
                else:
                    stock_adjust(sku="CH-C", location="CH-C", delta=-1, audit=AUDIT)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=write, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then: no two rows share a predecessor, and every chain reaches its head
    assert failures == []
    rows = OrderLedgerEntry.objects.filter(order=order).values_list("prev_hash", flat=True)
    assert len({bytes(prev) for prev in rows}) == len(rows) == 1 + workers // 2 * each
    _no_breaks()


@pytest.mark.django_db(transaction=True)
def test_seals_taken_while_writes_commit_cover_every_row_exactly_once():
    # given: writers committing while another thread seals over and over
    ProductFactory(sku="CH-S", track_inventory=False)
    orders = [
        order_create(customer_id=None, reference=str(n), lines={"CH-S": 1}, audit=AUDIT)
        for n in range(4)
    ]
    done, sealed_once = threading.Event(), threading.Event()
    failures = []

    def write(order) -> None:
        try:
            sealed_once.wait(10)
            for _ in range(15):
                order_adjust(order_id=order.pk, deltas={"CH-S": 1}, audit=AUDIT)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()

    def seal() -> None:
        try:
            while not done.is_set():
                ledger_seal()
                sealed_once.set()
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()

    sealer = threading.Thread(target=seal)
    writers = [threading.Thread(target=write, args=(order,)) for order in orders]

    # when
    sealer.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    sealer.join()
    ledger_seal()

    # then: the seals together hold each row once, and all of them verify
    assert failures == []
    last = LedgerSeal.objects.order_by("-number").first()
    rows = OrderLedgerEntry.objects.count() + StockLedgerEntry.objects.count()
    assert last.tree_size == rows == 4 + 4 * 15
    assert sum(LedgerSeal.objects.values_list("batch_size", flat=True)) == rows
    assert list(seal_problems()) == []
    assert LedgerSeal.objects.count() > 1
