import threading

import pytest
from django.db import connection, transaction
from django.db.models import Sum

from history.models import OrderLedgerEntry, OrderSnapshot, SkuDailyAdjustments, SkuDemand
from history.projector import (
    projection_lag,
    projection_run,
    projections_rebuild,
    projections_run,
)
from history.selectors import order_replay, order_timeline
from orders.models import Order, OrderLine
from orders.services import order_adjust, order_cancel, order_create, order_set_quantities
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


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
    )


def test_the_projector_catches_up_exactly(audit):
    # given
    _history(audit)

    # when
    applied = projections_run()

    # then
    rows = OrderLedgerEntry.objects.count()
    assert {k: applied[k] for k in ("order_snapshots", "sku_demand", "sku_daily")} == dict.fromkeys(
        ("order_snapshots", "sku_demand", "sku_daily"), rows
    )
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
        order = order_create(customer_id=None, reference="", lines={product.sku: 1}, audit=audit)
        order_adjust(order_id=order.pk, deltas={product.sku: round_}, audit=audit)
        for name in ("order_snapshots", "sku_demand", "sku_daily"):
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
