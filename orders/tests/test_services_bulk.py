"""order_adjustments_bulk: many single-line commands in one transaction, each with its own
version, ledger row and outbox event, in a fixed number of queries. Results are read as the
API shows them (orders.bulk_apis.item_result)."""

import threading
from types import SimpleNamespace

import pytest
from django.db import connection

from history.cache import cache_fill, cache_read
from history.models import OrderLedgerEntry, OutboxEvent, StockLedgerEntry
from inventory.models import Reservation, StockLevel
from inventory.selectors import stock_drift
from inventory.services import location_create, stock_receive
from orders.bulk_apis import item_result
from orders.models import Order, OrderLine
from orders.planner import LineRequest, OrderCommand
from orders.selectors import order_ledger_drift
from orders.services import (
    BatchRejected,
    order_adjust,
    order_adjustments_bulk,
    order_cancel,
    order_create,
)
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

APPLIED, UNCHANGED, ERROR = "applied", "unchanged", "error"


def item(*, order, sku, quantity=None, delta=None, expected_version=None) -> OrderCommand:
    return OrderCommand(order, [LineRequest(sku, quantity, delta)], expected_version)


def bulk(items, *, atomic: bool, audit) -> list[SimpleNamespace]:
    outcomes = order_adjustments_bulk(commands=items, atomic=atomic, audit=audit)
    return [
        SimpleNamespace(**{"error": None, **item_result(i, outcome)})
        for i, outcome in enumerate(outcomes)
    ]


def _quantities(order_id: int) -> dict[str, int]:
    return dict(OrderLine.objects.filter(order_id=order_id).values_list("product__sku", "quantity"))


def _version(order_id: int) -> int:
    return Order.objects.get(pk=order_id).version


def _counts() -> dict:
    return {
        "ledger": OrderLedgerEntry.objects.count(),
        "outbox": OutboxEvent.objects.count(),
        "lines": list(OrderLine.objects.order_by("pk").values_list("pk", "quantity")),
        "orders": list(Order.objects.order_by("pk").values_list("pk", "version", "updated_at")),
        "stock_ledger": StockLedgerEntry.objects.count(),
        "stock": list(StockLevel.objects.order_by("pk").values_list("on_hand", "reserved")),
        "reservations": list(Reservation.objects.order_by("pk").values_list("quantity")),
    }


def _outcome(results) -> list[tuple]:
    return [
        (r.index, r.status, r.version, r.quantity, r.delta, r.error and r.error["code"])
        for r in results
    ]


def _ledger(order_id: int) -> list[tuple]:
    return list(
        OrderLedgerEntry.objects.filter(order_id=order_id)
        .order_by("version", "id")
        .values_list("version", "sku", "quantity_before", "quantity_after", "event_type")
    )


def _event_versions(order_id: int) -> list[int]:
    return list(
        OutboxEvent.objects.filter(aggregate_type="order", aggregate_id=str(order_id))
        .order_by("id")
        .values_list("aggregate_version", flat=True)
    )


@pytest.fixture
def hundred_orders(make_order):
    """100 orders at version 1, each with P-0: 100; products P-0..P-4 exist."""
    for n in range(5):
        ProductFactory(sku=f"P-{n}")
    return [make_order(lines={"P-0": 100}) for _ in range(100)]


def _thousand_items(orders) -> list[OrderCommand]:
    """Per order: +3 then =50 on each of P-0..P-4 (P-1..P-4 are new lines): 10 items."""
    items = []
    for order in orders:
        for n in range(5):
            items.append(item(order=order.pk, sku=f"P-{n}", delta=3))
            items.append(item(order=order.pk, sku=f"P-{n}", quantity=50))
    return items


# --- applying ------------------------------------------------------------------------------


def test_thousand_items_across_hundred_orders_write_one_ledger_row_and_one_event_each(
    hundred_orders, audit
):
    # given
    items = _thousand_items(hundred_orders)
    ledger_before, outbox_before = OrderLedgerEntry.objects.count(), OutboxEvent.objects.count()

    # when
    results = bulk(items, atomic=False, audit=audit)

    # then
    assert len(items) == 1000
    assert [r.index for r in results] == list(range(1000))
    assert {r.status for r in results} == {APPLIED}
    assert OrderLedgerEntry.objects.count() - ledger_before == 1000
    assert OutboxEvent.objects.count() - outbox_before == 1000
    for order in hundred_orders:
        assert _version(order.pk) == 11
        assert _quantities(order.pk) == {f"P-{n}": 50 for n in range(5)}
        rows = _ledger(order.pk)
        assert [row[0] for row in rows] == list(range(1, 12))
        assert rows[1:3] == [
            (2, "P-0", 100, 103, "order.quantity_adjusted"),
            (3, "P-0", 103, 50, "order.quantity_adjusted"),
        ]
        assert rows[3:5] == [
            (4, "P-1", 0, 3, "order.quantity_adjusted"),
            (5, "P-1", 3, 50, "order.quantity_adjusted"),
        ]
        assert _event_versions(order.pk) == list(range(1, 12))
    first = hundred_orders[0].pk
    assert [(r.version, r.quantity, r.delta) for r in results[:4]] == [
        (2, 103, 3),
        (3, 50, -53),
        (4, 3, 3),
        (5, 50, 47),
    ]
    assert list(order_ledger_drift(check_snapshots=False)) == []
    # each ledger row and its event share the event id
    row = OrderLedgerEntry.objects.get(order_id=first, version=3)
    event = OutboxEvent.objects.get(event_id=row.event_id)
    assert (event.event_type, event.aggregate_version) == ("order.quantity_adjusted", 3)


def test_events_have_the_same_shape_as_single_changes(make_order, product, audit):
    # given
    single, batched = make_order(lines={product.sku: 10}), make_order(lines={product.sku: 10})
    order_adjust(order_id=single.pk, deltas={product.sku: 5}, audit=audit)

    # when
    bulk([item(order=batched.pk, sku=product.sku, delta=5)], atomic=False, audit=audit)

    # then
    one = OutboxEvent.objects.get(aggregate_id=str(single.pk), aggregate_version=2)
    many = OutboxEvent.objects.get(aggregate_id=str(batched.pk), aggregate_version=2)
    assert (many.event_type, many.aggregate_type) == (one.event_type, one.aggregate_type)
    assert set(many.payload) == set(one.payload)
    differing = {k for k in one.payload if one.payload[k] != many.payload[k]}
    assert differing == {"order_id", "occurred_at"}
    assert many.payload["changes"] == [{"sku": "SKU-1", "before": 10, "after": 15, "delta": 5}]
    row = OrderLedgerEntry.objects.get(order_id=batched.pk, version=2)
    assert (row.actor, row.source, row.reason) == ("tester", "system", "test")
    assert (row.delta, row.event_id) == (5, many.event_id)
    assert row.txid > 0


def test_items_for_one_order_apply_in_input_order_with_consecutive_versions(
    make_order, product, audit
):
    # given
    order = make_order(lines={product.sku: 10})
    items = [
        item(order=order.pk, sku="SKU-1", delta=5),
        item(order=order.pk, sku="SKU-1", quantity=7),
        item(order=order.pk, sku="SKU-1", delta=-7),
        item(order=order.pk, sku="SKU-1", delta=0),
        item(order=order.pk, sku="SKU-1", quantity=0, expected_version=4),
        item(order=order.pk, sku="SKU-1", delta=1, expected_version=4),
    ]

    # when
    results = bulk(items, atomic=False, audit=audit)

    # then
    assert _outcome(results) == [
        (0, APPLIED, 2, 15, 5, None),
        (1, APPLIED, 3, 7, -8, None),
        (2, APPLIED, 4, 0, -7, None),
        (3, UNCHANGED, 4, 0, 0, None),
        (4, UNCHANGED, 4, 0, 0, None),
        (5, APPLIED, 5, 1, 1, None),
    ]
    assert _ledger(order.pk)[1:] == [
        (2, "SKU-1", 10, 15, "order.quantity_adjusted"),
        (3, "SKU-1", 15, 7, "order.quantity_adjusted"),
        (4, "SKU-1", 7, 0, "order.quantity_adjusted"),
        (5, "SKU-1", 0, 1, "order.quantity_adjusted"),
    ]
    assert _version(order.pk) == 5
    assert _event_versions(order.pk) == [1, 2, 3, 4, 5]


def test_a_batch_that_changes_nothing_writes_nothing(make_order, product, audit):
    # given
    order = make_order(lines={product.sku: 10})
    before = _counts()

    # when
    results = bulk(
        [
            item(order=order.pk, sku="SKU-1", quantity=10, expected_version=1),
            item(order=order.pk, sku="SKU-1", delta=0),
        ],
        atomic=True,
        audit=audit,
    )

    # then
    assert _outcome(results) == [(0, UNCHANGED, 1, 10, 0, None), (1, UNCHANGED, 1, 10, 0, None)]
    assert _counts() == before


def test_a_new_line_that_ends_at_zero_is_kept_like_single_changes_keep_it(
    make_order, product, other_product, audit
):
    # given
    order = make_order(lines={product.sku: 10})

    # when
    bulk(
        [
            item(order=order.pk, sku="SKU-2", delta=4),
            item(order=order.pk, sku="SKU-2", delta=-4),
            item(order=order.pk, sku="SKU-2", quantity=0),
        ],
        atomic=False,
        audit=audit,
    )

    # then
    assert _quantities(order.pk) == {"SKU-1": 10, "SKU-2": 0}
    assert _version(order.pk) == 3
    assert list(order_ledger_drift(check_snapshots=False)) == []


# --- failures --------------------------------------------------------------------------------


def test_each_kind_of_failing_item_is_reported_and_the_others_are_applied(
    make_order, product, audit
):
    # given
    order = make_order(lines={product.sku: 10})
    cancelled = make_order(lines={product.sku: 10})
    order_cancel(order_id=cancelled.pk, audit=audit)
    items = [
        item(order=order.pk, sku="SKU-1", delta=1),
        item(order=987654, sku="SKU-1", delta=1),
        item(order=cancelled.pk, sku="SKU-1", delta=1),
        item(order=order.pk, sku="SKU-1", delta=1, expected_version=1),
        item(order=order.pk, sku="NOPE", delta=1),
        item(order=order.pk, sku="SKU-1", delta=-12),
        item(order=order.pk, sku="SKU-1", quantity=100_000_001),
        item(order=order.pk, sku="SKU-1", quantity=20, expected_version=2),
    ]
    cancelled_before = (_version(cancelled.pk), _ledger(cancelled.pk))

    # when
    results = bulk(items, atomic=False, audit=audit)

    # then
    assert _outcome(results) == [
        (0, APPLIED, 2, 11, 1, None),
        (1, ERROR, None, None, None, "not_found"),
        (2, ERROR, None, None, None, "order_not_editable"),
        (3, ERROR, None, None, None, "version_conflict"),
        (4, ERROR, None, None, None, "unknown_sku"),
        (5, ERROR, None, None, None, "quantity_out_of_range"),
        (6, ERROR, None, None, None, "quantity_out_of_range"),
        (7, APPLIED, 3, 20, 9, None),
    ]
    errors = {r.index: r.error for r in results if r.error}
    assert [errors[i]["status"] for i in sorted(errors)] == [404, 409, 412, 400, 409, 409]
    assert errors[1]["detail"] == "Order 987654 does not exist."
    assert (errors[3]["current_version"], errors[3]["expected_version"]) == (2, 1)
    assert errors[4]["detail"] == "Unknown sku: NOPE."
    assert errors[5]["detail"] == (
        "Adjusting SKU-1 by -12 would take it from 11 to -1; a quantity must stay between "
        "0 and 100000000."
    )
    assert all(set(e) >= {"code", "status", "title", "detail"} for e in errors.values())
    assert _ledger(order.pk)[1:] == [
        (2, "SKU-1", 10, 11, "order.quantity_adjusted"),
        (3, "SKU-1", 11, 20, "order.quantity_adjusted"),
    ]
    assert _quantities(order.pk) == {"SKU-1": 20}
    assert (_version(cancelled.pk), _ledger(cancelled.pk)) == cancelled_before
    assert list(order_ledger_drift(check_snapshots=False)) == []


def test_an_atomic_batch_with_one_bad_item_writes_nothing_at_all(hundred_orders, audit):
    # given
    items = _thousand_items(hundred_orders)
    items[737] = item(order=hundred_orders[73].pk, sku="P-3", delta=-1000)
    before = _counts()

    # when
    with pytest.raises(BatchRejected) as refused:
        bulk(items, atomic=True, audit=audit)

    # then
    assert _counts() == before
    exc = refused.value
    assert (exc.status, str(exc.code)) == (409, "batch_rejected")
    assert exc.extra["errors"] == [
        {
            "index": 737,
            "attr": "items.737",
            "pointer": "#/items/737",
            "code": "quantity_out_of_range",
            "status": 409,
            "title": "Quantity out of range",
            "detail": (
                "Adjusting P-3 by -1000 would take it from 3 to -997; a quantity must stay "
                "between 0 and 100000000."
            ),
            "sku": "P-3",
            "quantity": 3,
        }
    ]
    assert exc.detail.startswith("1 of 1000 items cannot be applied, so none was")


@pytest.mark.parametrize(
    ("bad", "status"),
    [
        ({"expected_version": 7}, 412),
        ({"sku": "NOPE"}, 400),
        ({"order": 987654}, 400),
        ({"delta": -12}, 409),
    ],
)
def test_an_atomic_refusal_is_400_for_unknown_things_412_for_stale_versions_else_409(
    make_order, product, audit, bad, status
):
    # given
    order = make_order(lines={product.sku: 10})
    good = item(order=order.pk, sku="SKU-1", delta=1)
    fields = {"order": order.pk, "sku": "SKU-1", "delta": 1, **bad}
    before = _counts()

    # when
    with pytest.raises(BatchRejected) as refused:
        bulk([good, item(**fields)], atomic=True, audit=audit)

    # then
    assert refused.value.status == status
    assert [e["index"] for e in refused.value.extra["errors"]] == [1]
    assert _counts() == before


def test_an_atomic_batch_without_failures_applies_everything(hundred_orders, audit):
    # when
    results = bulk(_thousand_items(hundred_orders), atomic=True, audit=audit)

    # then
    assert sum(r.status == APPLIED for r in results) == 1000
    assert {_version(o.pk) for o in hundred_orders} == {11}


def test_an_item_with_both_or_neither_quantity_and_delta_refuses_the_call(
    make_order, product, audit
):
    # given
    from config.errors import DomainValidationError

    order = make_order(lines={product.sku: 10})
    before = _counts()

    # when / then
    for malformed in (
        item(order=order.pk, sku="SKU-1", quantity=1, delta=1),
        item(order=order.pk, sku="SKU-1"),
    ):
        with pytest.raises(DomainValidationError) as refused:
            bulk(
                [item(order=order.pk, sku="SKU-1", delta=1), malformed],
                atomic=False,
                audit=audit,
            )
        assert refused.value.field == "items.1.quantity"
    assert _counts() == before


# --- tracked stock --------------------------------------------------------------------------


@pytest.fixture
def stocked(db, audit):
    """TRK-1 (tracked) with 10 on hand at WH-1."""
    ProductFactory(sku="TRK-1", track_inventory=True)
    location_create(code="WH-1", name="Main")
    stock_receive(sku="TRK-1", location="WH-1", quantity=10, audit=audit)


def _stock() -> tuple[int, int]:
    level = StockLevel.objects.get(product__sku="TRK-1", location__code="WH-1")
    return level.on_hand, level.reserved


def _reserved_by(order_id: int) -> int:
    return sum(
        Reservation.objects.filter(order_id=order_id, status="active").values_list(
            "quantity", flat=True
        )
    )


def test_tracked_items_reserve_and_release_like_single_changes_and_a_short_order_fails_alone(
    stocked, make_order, product, audit
):
    # given: A holds 2 and B 3 of the 10, so 5 are available
    a = make_order(lines={"TRK-1": 2, product.sku: 1})
    b = make_order(lines={"TRK-1": 3})
    assert _stock() == (10, 5)
    items = [
        item(order=a.pk, sku="TRK-1", delta=4),
        item(order=b.pk, sku="TRK-1", delta=3),
        item(order=a.pk, sku="TRK-1", delta=-1),
        item(order=a.pk, sku=product.sku, delta=1),
        item(order=b.pk, sku="TRK-1", delta=-3),
        item(order=b.pk, sku="TRK-1", quantity=3),
        item(order=b.pk, sku="TRK-1", quantity=6),
    ]

    # when: A takes 3 net (2 left); B wants 3 net more, but only 2 are available
    results = bulk(items, atomic=False, audit=audit)

    # then
    assert _outcome(results) == [
        (0, APPLIED, 2, 6, 4, None),
        (1, ERROR, None, None, None, "insufficient_stock"),
        (2, APPLIED, 3, 5, -1, None),
        (3, APPLIED, 4, 2, 1, None),
        (4, ERROR, None, None, None, "insufficient_stock"),
        (5, ERROR, None, None, None, "insufficient_stock"),
        (6, ERROR, None, None, None, "insufficient_stock"),
    ]
    error = results[1].error
    assert (error["status"], error["sku"], error["requested"], error["available"]) == (
        409,
        "TRK-1",
        3,
        2,
    )
    assert _stock() == (10, 8)
    assert (_reserved_by(a.pk), _reserved_by(b.pk)) == (5, 3)
    assert _quantities(a.pk) == {"TRK-1": 5, product.sku: 2}
    assert (_quantities(b.pk), _version(b.pk), _event_versions(b.pk)) == ({"TRK-1": 3}, 1, [1])
    assert list(order_ledger_drift(check_snapshots=False)) == []
    assert list(stock_drift(check_totals=False)) == []


def test_tracked_items_release_stock_when_quantities_drop(stocked, make_order, audit):
    # given
    a = make_order(lines={"TRK-1": 6})

    # when
    results = bulk(
        [
            item(order=a.pk, sku="TRK-1", delta=-2),
            item(order=a.pk, sku="TRK-1", quantity=1),
        ],
        atomic=True,
        audit=audit,
    )

    # then
    assert [r.status for r in results] == [APPLIED, APPLIED]
    assert _stock() == (10, 1)
    assert _reserved_by(a.pk) == 1
    assert list(stock_drift(check_totals=False)) == []


def test_an_atomic_batch_refused_for_stock_writes_nothing_not_even_other_orders_stock(
    stocked, make_order, audit
):
    # given: 5 available
    a = make_order(lines={"TRK-1": 2})
    b = make_order(lines={"TRK-1": 3})
    before = _counts()

    # when: A's +1 could be reserved, B's +5 cannot
    with pytest.raises(BatchRejected) as refused:
        bulk(
            [
                item(order=b.pk, sku="TRK-1", delta=5),
                item(order=a.pk, sku="TRK-1", delta=1),
                item(order=b.pk, sku="TRK-1", delta=1),
            ],
            atomic=True,
            audit=audit,
        )

    # then
    assert refused.value.status == 409
    assert [(e["index"], e["code"], e["available"]) for e in refused.value.extra["errors"]] == [
        (0, "insufficient_stock", 4),
        (2, "insufficient_stock", 4),
    ]
    assert _counts() == before


# --- queries, cache ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1000, 10])
def test_query_count_does_not_grow_with_the_number_of_items(
    hundred_orders, audit, django_assert_num_queries, size
):
    # given: 1,000 items over 100 orders, or 10 items over 10 orders
    if size == 1000:
        items = _thousand_items(hundred_orders)
    else:
        items = [item(order=o.pk, sku="P-1", quantity=7) for o in hundred_orders[:10]]

    # when: lock the orders, read their lines and the products, one write (plus the
    # savepoint pair)
    with django_assert_num_queries(5) as queries:
        results = bulk(items, atomic=False, audit=audit)

    # then
    assert {r.status for r in results} == {APPLIED}
    print(f"{len(items)} items: {len(queries.captured_queries)} queries")
    locks = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert len(locks) == 1
    assert "ORDER BY id FOR UPDATE" in locks[0]


def test_commit_leaves_a_cache_tombstone_at_each_orders_final_version(
    make_order, product, audit, django_capture_on_commit_callbacks
):
    # given: both orders are cached at version 1
    a, b = make_order(lines={product.sku: 1}), make_order(lines={product.sku: 1})
    cache_fill("order", str(a.pk), 1, b'{"v": 1}')
    cache_fill("order", str(b.pk), 1, b'{"v": 1}')

    # when
    with django_capture_on_commit_callbacks(execute=True):
        bulk(
            [
                item(order=a.pk, sku="SKU-1", delta=1),
                item(order=a.pk, sku="SKU-1", delta=1),
                item(order=b.pk, sku="SKU-1", delta=1),
            ],
            atomic=False,
            audit=audit,
        )

    # then: a reader that loaded an older version cannot fill the cache again
    assert tuple(cache_read("order", str(a.pk))) == (None, None, "miss")
    cache_fill("order", str(a.pk), 2, b'{"v": 2}')
    assert tuple(cache_read("order", str(a.pk))) == (None, None, "miss")
    cache_fill("order", str(a.pk), 3, b'{"v": 3}')
    assert tuple(cache_read("order", str(a.pk))) == (b'{"v": 3}', 3, "hit")
    assert tuple(cache_read("order", str(b.pk))) == (None, None, "miss")


# --- concurrency ----------------------------------------------------------------------------


def _run_threads(targets) -> list[BaseException]:
    start = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def run(target):
        try:
            start.wait()
            target()
        except BaseException as exc:  # noqa: BLE001 - asserted empty by the callers
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.django_db(transaction=True)
def test_bulk_batches_and_single_changes_on_the_same_orders_serialize(audit):
    # given: 5 orders at 100
    ProductFactory(sku="C-1")
    orders = [
        order_create(customer_id=None, reference="", lines={"C-1": 100}, audit=audit).pk
        for _ in range(5)
    ]

    def batches(reverse: bool):
        def run():
            for _ in range(4):
                ids = list(reversed(orders)) if reverse else orders
                results = bulk(
                    [item(order=pk, sku="C-1", delta=1) for pk in ids for _ in range(3)],
                    atomic=True,
                    audit=audit,
                )
                assert {r.status for r in results} == {APPLIED}

        return run

    def singles():
        for _ in range(5):
            for pk in orders:
                order_adjust(order_id=pk, deltas={"C-1": 2}, audit=audit)

    # when: two bulk writers (naming the orders in opposite orders) and three single writers
    errors = _run_threads([batches(False), batches(True), singles, singles, singles])

    # then: every change landed, one version each
    assert errors == []
    bulk_changes, single_changes = 2 * 4 * 3, 3 * 5
    for pk in orders:
        assert _quantities(pk) == {"C-1": 100 + bulk_changes + 2 * single_changes}
        assert _version(pk) == 1 + bulk_changes + single_changes
        assert [row[0] for row in _ledger(pk)] == list(range(1, 2 + bulk_changes + single_changes))
        assert _event_versions(pk) == list(range(1, 2 + bulk_changes + single_changes))
    assert list(order_ledger_drift(check_snapshots=False)) == []


@pytest.mark.django_db(transaction=True)
def test_bulk_batches_with_tracked_stock_and_single_changes_do_not_deadlock(audit):
    # given: two tracked products with stock, and six orders holding both
    for sku in ("T-1", "T-2"):
        ProductFactory(sku=sku, track_inventory=True)
    location_create(code="WH-1", name="Main")
    for sku in ("T-1", "T-2"):
        stock_receive(sku=sku, location="WH-1", quantity=10_000, audit=audit)
    orders = [
        order_create(customer_id=None, reference="", lines={"T-1": 1, "T-2": 1}, audit=audit).pk
        for _ in range(6)
    ]

    def batch(first: tuple[int, str], second: tuple[int, str]):
        # Order by order, `first` would lock its product's stock before `second`'s.
        def run():
            for _ in range(10):
                results = bulk(
                    [item(order=pk, sku=sku, delta=1) for pk, sku in (first, second)],
                    atomic=False,
                    audit=audit,
                )
                assert {r.status for r in results} == {APPLIED}

        return run

    def singles(pk: int):
        def run():
            for _ in range(10):
                order_adjust(order_id=pk, deltas={"T-2": 1, "T-1": 1}, audit=audit)

        return run

    # when: two batches on different orders that touch the products in opposite orders
    errors = _run_threads(
        [
            batch((orders[0], "T-1"), (orders[1], "T-2")),
            batch((orders[2], "T-2"), (orders[3], "T-1")),
            singles(orders[4]),
            singles(orders[5]),
        ]
    )

    # then
    assert errors == []
    reserved = dict(StockLevel.objects.values_list("product__sku", "reserved"))
    assert reserved == {"T-1": 6 + 10 + 10 + 20, "T-2": 6 + 10 + 10 + 20}
    assert [_reserved_by(pk) for pk in orders] == [12, 12, 12, 12, 22, 22]
    assert list(order_ledger_drift(check_snapshots=False)) == []
    assert list(stock_drift(check_totals=False)) == []
