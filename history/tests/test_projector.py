import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from unittest import mock

import pytest
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.test import override_settings
from django.utils import timezone

from history.audit import Audit
from history.models import (
    DailyChangeCounts,
    OrderLedgerEntry,
    OrderSnapshot,
    SkuDailyAdjustments,
    SkuDemand,
    Source,
    StockLedgerEntry,
)
from history.projector import (
    projection_lag,
    projection_run,
    projections_rebuild,
    projections_run,
)
from history.selectors import order_replay, order_timeline
from inventory.services import (
    location_create,
    reservation_cancel,
    reservation_confirm,
    reservation_create,
    stock_adjust,
    stock_count,
    stock_issue,
    stock_receive,
    transfer_create,
    transfer_receive,
)
from orders.models import Order, OrderLine
from orders.services import order_adjust, order_cancel, order_create, order_set_quantities
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = Audit(actor="clerk", source=Source.ADMIN, reason="projector test", reason_code="correction")
API = Audit(actor="erp", source=Source.API, reason="projector test", reason_code="cycle_count")
SYSTEM = Audit(actor="setup", source=Source.SYSTEM, reason="projector test")
DAILY_CHANGES = ("daily_changes_order", "daily_changes_stock")


def _history(audit, n: int = 6):
    a, b, c = ProductFactory(), ProductFactory(), ProductFactory()
    for i in range(n):
        order = order_create(
            customer_id=None, reference=f"P-{i}", lines={a.sku: 10 + i, b.sku: 2}, audit=audit
        )
        order_adjust(order_id=order.pk, deltas={a.sku: 5, b.sku: -1}, audit=audit)
        order_set_quantities(order_id=order.pk, quantities={c.sku: 3}, audit=audit)
        if i % 3 == 0:
            order_cancel(order_id=order.pk, audit=audit)


def _stock_moves(n: int = 0) -> None:
    """Every kind of stock movement, through the three doors: a receipt, an issue, an
    adjustment, a count, a transfer shipped and received, reservations confirmed and
    cancelled, and an order on a tracked product (its reservation)."""
    for code in (f"A{n}", f"B{n}"):
        location_create(code=code, name=f"Location {code}")
    sku = ProductFactory(track_inventory=True).sku
    stock_receive(sku=sku, location=f"A{n}", quantity=50, audit=SYSTEM)
    stock_issue(sku=sku, location=f"A{n}", quantity=2, audit=API)
    stock_adjust(sku=sku, location=f"A{n}", delta=-1, audit=ADMIN)
    stock_count(sku=sku, location=f"A{n}", counted=45, audit=API)
    transfer = transfer_create(
        sku=sku, from_location=f"A{n}", to_location=f"B{n}", quantity=5, audit=ADMIN
    )
    transfer_receive(transfer_id=transfer.pk, audit=SYSTEM)
    kept = reservation_create(sku=sku, quantity=3, location=f"A{n}", audit=API)
    reservation_confirm(reservation_id=kept.pk, audit=API)
    dropped = reservation_create(sku=sku, quantity=2, location=f"B{n}", audit=SYSTEM)
    reservation_cancel(reservation_id=dropped.pk, audit=ADMIN)
    order_create(customer_id=None, reference=f"S-{n}", lines={sku: 4}, audit=API)


def _daily_changes() -> dict[tuple[date, str, str], int]:
    return {
        (row.day, row.ledger, row.source): row.rows
        for row in DailyChangeCounts.objects.all()
        if row.rows
    }


def _counted_in_the_ledgers() -> dict[tuple[date, str, str], int]:
    """What DailyChangeCounts should hold, counted in SQL straight from both ledgers."""
    tz = timezone.get_default_timezone()
    counted: Counter = Counter()
    for ledger, model in (("order", OrderLedgerEntry), ("stock", StockLedgerEntry)):
        rows = (
            model.objects.annotate(day=TruncDate("occurred_at", tzinfo=tz))
            .values("day", "source")
            .annotate(rows=Count("*"))
            .order_by()
        )
        for row in rows:
            counted[(row["day"], ledger, row["source"])] += row["rows"]
    return dict(counted)


@contextmanager
def _clock(moment: datetime) -> Iterator[None]:
    """The services write their rows as if it were `moment` (as seed_demo sets its clock)."""

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return moment.astimezone(tz)

    with mock.patch("django.utils.timezone.datetime", FrozenDatetime):
        yield


def _dump():
    return (
        sorted(
            OrderSnapshot.objects.values_list(
                "order_id",
                "status",
                "total_quantity",
                "lines",
                "total_adjustments",
                "last_adjustment_delta",
                "last_version",
                "last_event_id",
            )
        ),
        sorted(SkuDemand.objects.values_list("sku", "open_quantity", "adjustment_count")),
        sorted(
            SkuDailyAdjustments.objects.values_list("sku", "day", "adjustment_count", "net_delta")
        ),
        sorted(DailyChangeCounts.objects.values_list("day", "ledger", "source", "rows")),
    )


def test_the_projector_catches_up_exactly(audit):
    # given
    _history(audit)

    # when
    applied = projections_run()

    # then
    rows = OrderLedgerEntry.objects.count()
    order_projections = ("order_snapshots", "sku_demand", "sku_daily", "daily_changes_order")
    assert {k: applied[k] for k in order_projections} == dict.fromkeys(order_projections, rows)
    for order in Order.objects.all():
        snapshot = OrderSnapshot.objects.get(order=order)
        replayed = order_replay(order_timeline(order_id=order.pk), order_id=order.pk)
        lines = dict(OrderLine.objects.filter(order=order).values_list("product__sku", "quantity"))
        assert snapshot.lines == replayed.quantities == lines
        assert snapshot.total_quantity == sum(lines.values())
        assert snapshot.last_version == order.version
        assert snapshot.status == order.status
        assert snapshot.total_adjustments == 3
        assert snapshot.last_adjustment_delta == 3
    for demand in SkuDemand.objects.all():
        open_quantity = OrderLine.objects.filter(
            product__sku=demand.sku, order__status="open"
        ).aggregate(total=Sum("quantity"))["total"]
        assert demand.open_quantity == open_quantity
    assert projection_lag()["order_snapshots"].events_behind == 0


def test_running_again_applies_nothing_twice(audit):
    # given
    _history(audit)
    _stock_moves()
    projections_run()
    before = _dump()

    # when
    again = projections_run()

    # then
    assert set(again.values()) == {0}
    assert _dump() == before


def test_a_row_that_commits_after_a_higher_id_is_not_skipped(audit):
    # given: transaction A writes first (lower ids) but commits last
    product = ProductFactory()
    a_written, a_may_commit, a_done = threading.Event(), threading.Event(), threading.Event()
    late_order: list[int] = []

    def slow_writer():
        try:
            with transaction.atomic():
                order = order_create(
                    customer_id=None, reference="late", lines={product.sku: 7}, audit=audit
                )
                late_order.append(order.pk)
                a_written.set()
                a_may_commit.wait(10)
        finally:
            connection.close()
            a_done.set()

    threading.Thread(target=slow_writer).start()
    assert a_written.wait(10)
    early = order_create(customer_id=None, reference="early", lines={product.sku: 1}, audit=audit)

    # when: the projector runs while A is still open, then again after A commits
    first = projection_run(name="order_snapshots")
    a_may_commit.set()
    assert a_done.wait(10)
    second = projection_run(name="order_snapshots")

    # then
    late_id = late_order[0]
    assert late_id < early.pk
    assert (first, second) == (1, 1)
    assert OrderSnapshot.objects.get(order_id=late_id).lines == {product.sku: 7}
    assert OrderSnapshot.objects.get(order_id=early.pk).lines == {product.sku: 1}


def test_a_rebuild_gives_the_same_tables_as_incremental_updates(audit):
    # given: snapshots built incrementally, in small batches between writes
    product = ProductFactory()
    for round_ in range(4):
        _history(audit, n=2)
        _stock_moves(round_)
        order = order_create(customer_id=None, reference="", lines={product.sku: 1}, audit=audit)
        order_adjust(order_id=order.pk, deltas={product.sku: round_}, audit=audit)
        for name in ("order_snapshots", "sku_demand", "sku_daily", *DAILY_CHANGES):
            projection_run(name=name, batch_size=3)
    projections_run()
    incremental = _dump()

    # when
    projections_rebuild()

    # then
    assert _dump() == incremental
    assert len(incremental[0]) == Order.objects.count()


def test_lag_counts_the_events_not_yet_applied(audit):
    # given
    _history(audit, n=2)
    projections_run()
    product = ProductFactory()
    order_create(customer_id=None, reference="", lines={product.sku: 1}, audit=audit)

    # when
    lag = projection_lag()

    # then
    assert lag["order_snapshots"].events_behind == 1
    assert lag["order_snapshots"].seconds_behind >= 0
    projections_run()
    assert projection_lag()["sku_demand"].events_behind == 0


def test_daily_changes_count_both_ledgers_per_day_and_source(audit):
    # given: order changes and every kind of stock movement, through each door
    _history(audit, n=2)
    _stock_moves()
    sku = ProductFactory().sku
    order = order_create(customer_id=None, reference="A", lines={sku: 1}, audit=ADMIN)
    order_set_quantities(order_id=order.pk, quantities={sku: 2}, audit=API)

    # when
    applied = projections_run(names=DAILY_CHANGES)

    # then: one count per (day, ledger, source), as many as the ledgers hold
    stock_rows = StockLedgerEntry.objects.count()
    assert applied == {
        "daily_changes_order": OrderLedgerEntry.objects.count(),
        "daily_changes_stock": stock_rows,
    }
    counts = _daily_changes()
    assert counts == _counted_in_the_ledgers()
    today = timezone.localdate()
    assert {(ledger, source) for day, ledger, source in counts if day == today} == {
        (ledger, source) for ledger in ("order", "stock") for source in Source.values
    }
    assert sum(n for (_, ledger, _), n in counts.items() if ledger == "stock") == stock_rows
    assert projection_lag()["daily_changes_stock"].events_behind == 0


def test_daily_changes_are_idempotent_on_replay_and_rebuild(audit):
    # given: counted incrementally
    _history(audit, n=2)
    _stock_moves()
    projections_run(names=DAILY_CHANGES)
    _stock_moves(1)
    projections_run(names=DAILY_CHANGES)
    counted = _daily_changes()

    # when: run again, rebuild one ledger's projection, then both
    again = projections_run(names=DAILY_CHANGES)
    after_again = _daily_changes()
    stock_only = projections_rebuild(names=["daily_changes_stock"])
    after_stock_rebuild = _daily_changes()
    projections_rebuild(names=DAILY_CHANGES)

    # then: the same counts every time, the order ledger's kept through the stock rebuild
    assert again == dict.fromkeys(DAILY_CHANGES, 0)
    assert stock_only == {"daily_changes_stock": StockLedgerEntry.objects.count()}
    assert after_again == after_stock_rebuild == _daily_changes() == counted
    assert counted == _counted_in_the_ledgers()


@override_settings(TIME_ZONE="America/New_York")
def test_a_day_of_daily_changes_is_a_day_of_the_time_zone():
    # given: both ledgers written at 23:30 and at 00:30 New York time (UTC-5 in January)
    location_create(code="NY", name="New York")
    sku = ProductFactory(track_inventory=True).sku
    with _clock(datetime(2026, 1, 15, 4, 30, tzinfo=UTC)):  # 14 Jan, 23:30 in New York
        stock_receive(sku=sku, location="NY", quantity=5, audit=SYSTEM)
        order_create(customer_id=None, reference="late", lines={sku: 1}, audit=API)
    with _clock(datetime(2026, 1, 15, 5, 30, tzinfo=UTC)):  # 15 Jan, 00:30 in New York
        stock_adjust(sku=sku, location="NY", delta=1, audit=ADMIN)

    # when
    projections_run(names=DAILY_CHANGES)

    # then: the order and its reservation on the 14th, the adjustment on the 15th
    assert _daily_changes() == {
        (date(2026, 1, 14), "order", "api"): 1,
        (date(2026, 1, 14), "stock", "system"): 1,
        (date(2026, 1, 14), "stock", "api"): 1,
        (date(2026, 1, 15), "stock", "admin"): 1,
    }
