"""The order timeline's stock movements: under each order change, the stock ledger rows the
same transaction wrote, each linking to its stock level's timeline."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from history.models import OrderLedgerEntry, StockLedgerEntry
from inventory.models import StockLevel
from inventory.services import location_create, stock_receive
from orders import services
from orders.models import Order
from orders.timeline import attach_stock_movements
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def timeline_url(order: Order) -> str:
    return reverse("admin:orders_order_timeline", args=[order.pk])


@pytest.fixture
def staff_client(client, user_with_role):
    client.force_login(user_with_role("order_staff"))
    return client


@pytest.fixture
def tracked_order(make_order, audit):
    """50 TRK-1 ordered: 30 reserved at WH-A, 10 reserved and 10 backordered at WH-B."""
    ProductFactory(sku="TRK-1", track_inventory=True, allow_backorder=True)
    location_create(code="WH-A", name="First", priority=1)
    location_create(code="WH-B", name="Second", priority=2)
    stock_receive(sku="TRK-1", location="WH-A", quantity=30, audit=audit)
    stock_receive(sku="TRK-1", location="WH-B", quantity=10, audit=audit)
    return make_order(lines={"TRK-1": 50})


def stock_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if 'FROM "history_stockledgerentry"' in q["sql"]]


def test_stock_rows_share_the_order_changes_transaction_not_its_event(tracked_order):
    # given
    order = tracked_order

    # when
    change = OrderLedgerEntry.objects.get(order_id=order.pk)
    stock = list(StockLedgerEntry.objects.filter(reference_type="order", reference_id=order.pk))

    # then
    assert stock
    assert {row.txid for row in stock} == {change.txid}
    assert change.event_id not in {row.event_id for row in stock}


def test_timeline_shows_stock_movements_under_the_change_that_caused_them(
    staff_client, tracked_order, audit
):
    # given
    order = services.order_set_quantities(
        order_id=tracked_order.pk, quantities={"TRK-1": 20}, expected_version=1, audit=audit
    )
    order = services.order_cancel(order_id=order.pk, expected_version=order.version, audit=audit)
    levels = [level.pk for level in StockLevel.objects.all()]

    # when
    response = staff_client.get(timeline_url(order))

    # then
    assert response.status_code == 200
    entries = response.context["entries"]
    moves = {
        entry.version: sorted(
            (m.location_code, m.movement, m.delta_on_hand, m.delta_reserved, m.delta_backorder)
            for m in entry.stock_movements
        )
        for entry in entries
    }
    assert moves[1] == [("WH-A", "reserve", 0, 30, 10), ("WH-B", "reserve", 0, 10, 0)]
    assert moves[2] == [("WH-A", "release", 0, -10, -10), ("WH-B", "release", 0, -10, 0)]
    assert moves[3] == [("WH-A", "release", 0, -20, 0)]
    assert moves[2] and moves[3]
    assert response.context["other_movements"] == []
    content = response.content.decode()
    assert content.count('<tr class="stock-movement">') == sum(len(m) for m in moves.values())
    for pk in levels:
        assert f'href="{reverse("admin:inventory_stocklevel_timeline", args=[pk])}"' in content
    assert "on hand +0" in content and "reserved +30" in content and "backorder +10" in content


def test_stock_movements_cost_one_query_for_the_whole_page(staff_client, tracked_order, audit):
    # given
    order = tracked_order
    with CaptureQueriesContext(connection) as one_change:
        staff_client.get(timeline_url(order))
    for quantity in (40, 45, 20):
        order = services.order_set_quantities(
            order_id=order.pk,
            quantities={"TRK-1": quantity},
            expected_version=order.version,
            audit=audit,
        )

    # when
    with CaptureQueriesContext(connection) as four_changes:
        response = staff_client.get(timeline_url(order))

    # then
    assert response.status_code == 200
    assert sum(len(entry.stock_movements) for entry in response.context["entries"]) > 4
    assert len(stock_queries(four_changes.captured_queries)) == 1
    assert len(four_changes) == len(one_change)


def test_movements_go_to_their_transactions_change_and_the_rest_apart():
    # given
    t = [datetime(2026, 1, 1, 12, 0, second, tzinfo=UTC) for second in range(6)]
    entries = [
        SimpleNamespace(version=1, txid=10, occurred_at=t[0]),
        SimpleNamespace(version=1, txid=10, occurred_at=t[0]),
        SimpleNamespace(version=2, txid=20, occurred_at=t[2]),
        SimpleNamespace(version=3, txid=20, occurred_at=t[4]),
    ]
    moves = [
        SimpleNamespace(txid=10, occurred_at=t[1]),
        SimpleNamespace(txid=30, occurred_at=t[1]),
        SimpleNamespace(txid=20, occurred_at=t[3]),
        SimpleNamespace(txid=20, occurred_at=t[5]),
    ]

    # when
    other = attach_stock_movements(entries, moves)

    # then
    assert entries[0].stock_movements == []
    assert entries[1].stock_movements == [moves[0]]
    assert entries[2].stock_movements == [moves[2]]
    assert entries[3].stock_movements == [moves[3]]
    assert other == [moves[1]]
