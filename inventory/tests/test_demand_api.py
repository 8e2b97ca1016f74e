"""Open demand per sku for dashboards (/demand/ and /demand/{sku}/), served from the
projector's snapshot tables."""

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from history.models import OrderLedgerEntry, SkuDailyAdjustments, SkuDemand
from history.projector import projections_run
from orders.models import OrderLine, OrderStatus
from orders.services import order_adjust, order_cancel, order_create
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

DEMAND = "/api/v1/demand/"
PROBLEM = "application/problem+json"
ROLES = ["order_staff", "integrator", "auditor"]


def demand_url(sku: str) -> str:
    return f"{DEMAND}{sku}/"


def open_quantity(sku: str) -> int:
    return (
        OrderLine.objects.filter(product__sku=sku, order__status=OrderStatus.OPEN).aggregate(
            total=Sum("quantity")
        )["total"]
        or 0
    )


@pytest.mark.django_db(transaction=True)
def test_demand_matches_the_orders_after_projection(api_client_for, audit):
    # given
    a, b = ProductFactory(sku="DEM-A"), ProductFactory(sku="DEM-B")
    first = order_create(customer_id=None, reference="D1", lines={a.sku: 10, b.sku: 4}, audit=audit)
    second = order_create(customer_id=None, reference="D2", lines={a.sku: 5}, audit=audit)
    order_adjust(order_id=first.pk, deltas={a.sku: 3}, audit=audit)
    order_adjust(order_id=second.pk, deltas={a.sku: -2}, audit=audit)
    order_cancel(order_id=second.pk, audit=audit)
    projections_run()
    api = api_client_for("auditor")

    # when
    listed = api.get(DEMAND)
    detail = api.get(demand_url(a.sku))

    # then
    assert listed.status_code == 200
    assert listed.json()["results"] == [
        {
            "sku": demand.sku,
            "open_quantity": open_quantity(demand.sku),
            "adjustment_count": demand.adjustment_count,
            "last_updated": demand.last_updated.isoformat().replace("+00:00", "Z"),
        }
        for demand in SkuDemand.objects.order_by("sku")
    ]
    assert [row["open_quantity"] for row in listed.json()["results"]] == [13, 4]
    body = detail.json()
    assert detail.status_code == 200
    assert (body["sku"], body["open_quantity"], body["adjustment_count"]) == (a.sku, 13, 2)
    today = OrderLedgerEntry.objects.filter(sku=a.sku)
    assert body["daily"] == [
        {
            "day": timezone.now().date().isoformat(),
            "adjustment_count": 2,
            "net_delta": today.aggregate(net=Sum("delta"))["net"],
        }
    ]


def test_demand_list_filters_by_sku_and_pages_by_cursor(api):
    # given
    for sku in ("C-3", "A-1", "B-2"):
        SkuDemand.objects.create(sku=sku, open_quantity=len(sku), adjustment_count=1)

    # when
    filtered = api.get(DEMAND, {"sku": "B-2"})
    first_page = api.get(DEMAND, {"page_size": 2})
    second_page = api.get(first_page.json()["next"])

    # then
    assert [row["sku"] for row in filtered.json()["results"]] == ["B-2"]
    assert [row["sku"] for row in first_page.json()["results"]] == ["A-1", "B-2"]
    assert [row["sku"] for row in second_page.json()["results"]] == ["C-3"]
    assert second_page.json()["next"] is None


@pytest.mark.parametrize("role", ROLES)
def test_every_role_can_read_demand(api_client_for, role):
    # given
    SkuDemand.objects.create(sku="R-1", open_quantity=1)
    api = api_client_for(role)

    # when
    responses = [api.get(DEMAND), api.get(demand_url("R-1"))]

    # then
    assert [r.status_code for r in responses] == [200, 200]


def test_demand_needs_authentication(client):
    # when
    response = client.get(DEMAND)

    # then
    assert response.status_code == 401
    assert response["Content-Type"].startswith(PROBLEM)


def test_demand_is_read_only(api):
    # when
    responses = [api.post(DEMAND, {}), api.put(demand_url("X"), {}), api.delete(demand_url("X"))]

    # then
    assert [r.status_code for r in responses] == [405, 405, 405]


def test_demand_detail_shows_the_last_30_days_oldest_first(api):
    # given
    today = timezone.now().date()
    SkuDemand.objects.create(
        sku="W-1", open_quantity=9, adjustment_count=4, last_updated=timezone.now()
    )
    for days_ago, count, net in ((30, 9, 9), (29, 1, -2), (3, 2, 5), (0, 1, 6)):
        SkuDailyAdjustments.objects.create(
            sku="W-1", day=today - timedelta(days=days_ago), adjustment_count=count, net_delta=net
        )
    SkuDailyAdjustments.objects.create(sku="W-2", day=today, adjustment_count=7, net_delta=7)

    # when
    response = api.get(demand_url("W-1"))

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["open_quantity"], body["adjustment_count"]) == (9, 4)
    assert body["daily"] == [
        {"day": (today - timedelta(days=29)).isoformat(), "adjustment_count": 1, "net_delta": -2},
        {"day": (today - timedelta(days=3)).isoformat(), "adjustment_count": 2, "net_delta": 5},
        {"day": today.isoformat(), "adjustment_count": 1, "net_delta": 6},
    ]


def test_unknown_sku_is_a_404_problem(api):
    # when
    response = api.get(demand_url("NO-SUCH-SKU"))

    # then
    assert response.status_code == 404
    assert response["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert (body["status"], body["code"]) == (404, "not_found")
    assert "NO-SUCH-SKU" in body["detail"]


def test_a_product_never_ordered_has_zero_demand(api):
    # given
    product = ProductFactory(sku="NEW-1")

    # when
    response = api.get(demand_url(product.sku))

    # then
    assert response.status_code == 200
    assert response.json() == {
        "sku": "NEW-1",
        "open_quantity": 0,
        "adjustment_count": 0,
        "last_updated": None,
        "daily": [],
    }


def test_demand_list_reads_only_the_snapshot(api, django_assert_max_num_queries):
    # given
    SkuDemand.objects.bulk_create(
        SkuDemand(sku=f"Q-{i:03d}", open_quantity=i, adjustment_count=i) for i in range(60)
    )

    # when: token, role lookup, one page
    with django_assert_max_num_queries(3) as queries:
        response = api.get(DEMAND, {"page_size": 50})

    # then
    assert response.status_code == 200
    assert len(response.json()["results"]) == 50
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    assert "history_orderledgerentry" not in sql


def test_demand_detail_query_count(api, django_assert_max_num_queries):
    # given
    SkuDemand.objects.create(sku="QD-1", open_quantity=1)
    today = timezone.now().date()
    SkuDailyAdjustments.objects.bulk_create(
        SkuDailyAdjustments(sku="QD-1", day=today - timedelta(days=i), adjustment_count=1)
        for i in range(30)
    )

    # when: token, role lookup, demand, days
    with django_assert_max_num_queries(4) as queries:
        response = api.get(demand_url("QD-1"))

    # then
    assert response.status_code == 200
    assert len(response.json()["daily"]) == 30
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    assert "history_orderledgerentry" not in sql
