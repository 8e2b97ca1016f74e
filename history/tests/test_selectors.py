from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import DomainError
from history.audit import Audit
from history.models import DailyChangeCounts, OrderLedgerEntry, Source
from history.selectors import adjustments_per_day, order_as_of, order_replay, order_timeline
from inventory.models import Product
from orders.models import OrderLine
from orders.services import order_adjust, order_cancel, order_create, order_set_quantities

pytestmark = pytest.mark.django_db

SKUS = ["P-A", "P-B", "P-C"]
AUDIT = Audit(actor="prop", source=Source.SYSTEM, reason="property")

quantities = st.integers(min_value=0, max_value=500)
commands = st.one_of(
    st.tuples(st.just("set"), st.dictionaries(st.sampled_from(SKUS), quantities, min_size=1)),
    st.tuples(
        st.just("adjust"),
        st.dictionaries(st.sampled_from(SKUS), st.integers(-300, 300), min_size=1),
    ),
    st.tuples(st.just("cancel"), st.none()),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    initial=st.dictionaries(st.sampled_from(SKUS), quantities, min_size=1),
    steps=st.lists(commands, max_size=12),
)
def test_replaying_the_ledger_rebuilds_current_quantities_exactly(initial, steps):
    # given
    for sku in SKUS:
        Product.objects.get_or_create(sku=sku, defaults={"name": sku, "track_inventory": False})
    order = order_create(customer_id=None, reference="prop", lines=initial, audit=AUDIT)

    # when
    for kind, argument in steps:
        try:
            if kind == "set":
                order_set_quantities(order_id=order.pk, quantities=argument, audit=AUDIT)
            elif kind == "adjust":
                order_adjust(order_id=order.pk, deltas=argument, audit=AUDIT)
            else:
                order_cancel(order_id=order.pk, audit=AUDIT)
        except DomainError:
            pass  # refused commands must leave no trace, which the replay below checks

    # then
    order.refresh_from_db()
    replayed = order_replay(order_timeline(order_id=order.pk), order_id=order.pk)
    actual = dict(OrderLine.objects.filter(order=order).values_list("product__sku", "quantity"))
    assert replayed.problems == []
    assert replayed.quantities == actual
    assert replayed.version == order.version
    assert replayed.status == order.status
    versions = set(OrderLedgerEntry.objects.filter(order=order).values_list("version", flat=True))
    assert versions == set(range(1, order.version + 1))


def test_as_of_returns_the_state_at_that_moment(make_order, product, audit):
    # given
    order = make_order(lines={product.sku: 100})
    order_set_quantities(order_id=order.pk, quantities={product.sku: 120}, audit=audit)
    first, second = OrderLedgerEntry.objects.filter(order=order).order_by("version")

    # when
    before_creation = order_as_of(order_id=order.pk, at=first.occurred_at - timedelta(seconds=1))
    at_creation = order_as_of(order_id=order.pk, at=first.occurred_at)
    now = order_as_of(order_id=order.pk, at=timezone.now())

    # then
    assert before_creation is None
    assert (at_creation.version, at_creation.quantities) == (1, {product.sku: 100})
    assert (now.version, now.quantities) == (2, {product.sku: 120})
    assert second.occurred_at >= first.occurred_at


def test_replay_reports_a_break_in_the_chain():
    # given: rows as a tampered export might contain them
    rows = [
        OrderLedgerEntry(
            version=1,
            sku="X",
            quantity_before=0,
            quantity_after=5,
            delta=5,
            event_type="order.created",
        ),
        OrderLedgerEntry(
            version=3,
            sku="X",
            quantity_before=6,
            quantity_after=7,
            delta=1,
            event_type="order.quantity_adjusted",
        ),
    ]

    # when
    state = order_replay(rows, order_id=1)

    # then
    assert state.quantities == {"X": 7}
    assert len(state.problems) == 2


def test_adjustments_per_day_read_the_projection_by_ledger_and_source_in_one_query(
    django_assert_num_queries,
):
    # given: counts as the projector leaves them, in the window and either side of it
    today = timezone.localdate()
    DailyChangeCounts.objects.bulk_create(
        DailyChangeCounts(day=day, ledger=ledger, source=source, rows=rows)
        for day, ledger, source, rows in [
            (today, "order", "admin", 2),
            (today, "order", "api", 1),
            (today, "stock", "system", 5),
            (today - timedelta(days=29), "stock", "api", 3),  # the first day shown
            (today - timedelta(days=30), "order", "system", 7),  # a day too old
            (today + timedelta(days=1), "stock", "admin", 4),  # not yet (a clock ahead)
        ]
    )

    # when
    with django_assert_num_queries(1):
        days = adjustments_per_day(days=30)

    # then: every day, ledger and source, 0 where nothing was counted
    assert [day.day for day in days] == [today - timedelta(days=n) for n in range(29, -1, -1)]
    assert days[-1].by_ledger == {
        "order": {"admin": 2, "api": 1, "system": 0},
        "stock": {"admin": 0, "api": 0, "system": 5},
    }
    assert (days[-1].total(), days[-1].total("order"), days[-1].total("stock")) == (8, 3, 5)
    assert days[0].by_ledger["stock"] == {"admin": 0, "api": 3, "system": 0}
    assert sum(day.total() for day in days[1:-1]) == 0
