"""The admin index (orders.admin_site): the dashboard for staff and auditors, every figure
linking to a list that opens, a query count that does not grow with the data, the models
grouped the way staff work, and "View site" leading to the API docs."""

from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from history.audit import Audit
from history.models import (
    CurrentTransactionId,
    OrderLedgerEntry,
    OutboxEvent,
    Source,
    StockLedgerEntry,
)
from history.projector import projections_run
from history.seals import ledger_seal
from inventory.models import StockLevel
from inventory.selectors import ledger_changes_latest, stock_low_summary
from inventory.services import (
    location_create,
    stock_adjust,
    stock_receive,
    stock_set_thresholds,
)
from orders.dashboard import duration_text
from orders.services import order_create, order_set_quantities
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)  # seals and projections see commits

INDEX = reverse("admin:index")
ADMIN = Audit(actor="clerk", source=Source.ADMIN, reason="dashboard test", reason_code="correction")
API = Audit(actor="erp", source=Source.API, reason="dashboard test")
SYSTEM = Audit(actor="setup", source=Source.SYSTEM, reason="dashboard test")


def low_level(sku: str, *, on_hand: int, reorder_point: int, location: str = "MAIN") -> None:
    ProductFactory(sku=sku, track_inventory=True)
    stock_receive(sku=sku, location=location, quantity=on_hand, audit=SYSTEM)
    stock_set_thresholds(
        sku=sku, location=location, reorder_point=reorder_point, safety_stock=0, audit=SYSTEM
    )


def dead_letter_one() -> OutboxEvent:
    event = OutboxEvent.objects.filter(published_at__isnull=True).order_by("-id").first()
    OutboxEvent.objects.filter(pk=event.pk).update(
        attempts=8, last_error="connection refused", dead_lettered_at=timezone.now()
    )
    return event


def busy_day(n: int) -> None:
    """One more of everything the dashboard counts: an order adjusted through two doors,
    a low level received by the system and adjusted in the admin, a dead letter."""
    product = ProductFactory(sku=f"DASH-{n}")
    order = order_create(customer_id=None, reference=f"D{n}", lines={product.sku: 5}, audit=SYSTEM)
    order_set_quantities(order_id=order.pk, quantities={product.sku: 7}, audit=ADMIN)
    order_set_quantities(order_id=order.pk, quantities={product.sku: 3}, audit=API)
    low_level(f"LOW-{n}", on_hand=n + 1, reorder_point=10 + 2 * n)
    stock_adjust(sku=f"LOW-{n}", location="MAIN", delta=1, audit=ADMIN)
    dead_letter_one()


@pytest.fixture
def shop(db):
    location_create(code="MAIN", name="Main warehouse")
    busy_day(1)
    projections_run()
    ledger_seal()


def client_as(client, role: str):
    client.force_login(UserFactory(role=role))
    return client


def dashboard_urls(dashboard) -> list[str]:
    return [
        dashboard.low_stock_url,
        dashboard.backlog_url,
        dashboard.dead_letters_url,
        dashboard.outbox_url,
        dashboard.projections_url,
        dashboard.seals_url,
        *(panel.url for panel in dashboard.chart.panels),
        reverse("admin:history_ledgerseal_change", args=[dashboard.seal.pk]),
        *(bar.url for bar in dashboard.chart.bars),
        *(change.url for change in dashboard.changes),
        *(
            reverse("admin:inventory_stocklevel_timeline", args=[level.pk])
            for level in dashboard.low_stock.worst
        ),
    ]


@pytest.mark.parametrize("role", ["order_staff", "auditor"])
def test_the_dashboard_shows_every_figure_and_each_link_opens(client, shop, role):
    # given
    client = client_as(client, role)

    # when
    response = client.get(INDEX)

    # then
    assert response.status_code == 200
    dashboard = response.context["dashboard"]
    assert dashboard.low_stock.count == 1
    assert [level.product.sku for level in dashboard.low_stock.worst] == ["LOW-1"]
    assert dashboard.outbox["dead_lettered"] == 1
    assert dashboard.seal is not None
    assert dashboard.projections_behind == 0
    order_panel, stock_panel = dashboard.chart.panels
    assert (order_panel.ledger, stock_panel.ledger) == ("order", "stock")
    assert order_panel.total == {"Admin": 1, "API": 1, "System": 1}
    assert stock_panel.total == {"Admin": 1, "API": 0, "System": 1}
    assert {change.row.kind for change in dashboard.changes} == {"order", "stock"}
    html = response.content.decode()
    for anchor in (
        'id="dashboard-low-stock"',
        'id="dashboard-backlog"',
        'id="dashboard-dead-letters"',
        'id="dashboard-projections"',
        'id="dashboard-latest-seal"',
        'id="dashboard-seals"',
        'id="dashboard-order-ledger"',
        'id="dashboard-stock-ledger"',
        'id="dashboard-chart-order"',
        'id="dashboard-chart-stock"',
        "Stock movements",
        "<svg",
        "manage.py verify_ledger",
    ):
        assert anchor in html
    for url in dashboard_urls(dashboard):
        assert url in html.replace("&amp;", "&")
        assert client.get(url).status_code == 200, url


def test_the_figures_link_to_the_rows_they_count(client, shop):
    # given
    client = client_as(client, "order_staff")
    dashboard = client.get(INDEX).context["dashboard"]

    # when
    low = client.get(dashboard.low_stock_url).context["cl"].result_list
    dead = client.get(dashboard.dead_letters_url).context["cl"].result_list
    today_api = next(bar for bar in reversed(dashboard.chart.bars) if bar.css_class == "api")
    api_rows = client.get(today_api.url).context["cl"].result_list
    today_stock_admin = next(
        bar for bar in dashboard.chart.bars if (bar.ledger, bar.source) == ("stock", "admin")
    )
    stock_admin_rows = client.get(today_stock_admin.url).context["cl"].result_list

    # then
    assert [level.product.sku for level in low] == ["LOW-1"]
    assert len(dead) == 1 and dead[0].dead_lettered_at is not None
    assert [(row.source, row.delta) for row in api_rows] == [(Source.API, -4)]
    assert [(row.source, row.movement, row.delta_on_hand) for row in stock_admin_rows] == [
        (Source.ADMIN, "adjust", 1)
    ]


def test_each_bar_of_the_chart_opens_the_rows_it_counts(client, shop):
    # given: a stock movement and an order change yesterday, by the API
    yesterday = timezone.now() - timedelta(days=1)
    for model in (OrderLedgerEntry, StockLedgerEntry):  # the ledgers refuse UPDATE: insert
        row = model.objects.filter(source=Source.SYSTEM).first()
        row.pk, row.version, row.source, row.occurred_at = None, 99, Source.API, yesterday
        row.txid = CurrentTransactionId()  # not the copied row's: the projector reads it
        model.objects.bulk_create([row])
    projections_run()
    client = client_as(client, "auditor")

    # when
    bars = client.get(INDEX).context["dashboard"].chart.bars

    # then: each segment lists exactly its ledger's rows of that day and source
    assert {(bar.ledger, bar.day, bar.source) for bar in bars} == {
        ("order", timezone.localdate(), "admin"),
        ("order", timezone.localdate(), "api"),
        ("order", timezone.localdate(), "system"),
        ("stock", timezone.localdate(), "admin"),
        ("stock", timezone.localdate(), "system"),
        ("order", timezone.localdate(yesterday), "api"),
        ("stock", timezone.localdate(yesterday), "api"),
    }
    for bar in bars:
        changelist = client.get(bar.url).context["cl"]
        model = {"order": OrderLedgerEntry, "stock": StockLedgerEntry}[bar.ledger]
        start = timezone.make_aware(datetime.combine(bar.day, time.min))
        expected = model.objects.filter(
            source=bar.source, occurred_at__gte=start, occurred_at__lt=start + timedelta(days=1)
        )
        assert changelist.model is model, bar.url
        assert changelist.result_count == bar.rows == expected.count(), bar.url
        assert {row.pk for row in changelist.result_list} == set(
            expected.values_list("pk", flat=True)
        )


def test_no_dashboard_without_admin_access(client, shop):
    # given
    integrator = UserFactory(role="integrator", is_staff=True)
    integrator.is_staff = True
    integrator.save()

    # when
    anonymous = client.get(INDEX)
    client.force_login(UserFactory())
    plain_user = client.get(INDEX)
    client.force_login(integrator)
    integrator_page = client.get(INDEX)

    # then
    assert anonymous.status_code == plain_user.status_code == 302
    assert anonymous.url.startswith(reverse("admin:login"))
    assert integrator_page.status_code == 200
    assert "dashboard" not in integrator_page.context
    assert 'id="dashboard"' not in integrator_page.content.decode()


def test_the_dashboards_query_count_does_not_grow_with_the_data(client, shop):
    # given
    client = client_as(client, "order_staff")
    client.get(INDEX)
    with CaptureQueriesContext(connection) as small:
        assert client.get(INDEX).status_code == 200
    for n in range(2, 14):
        busy_day(n)
    projections_run()

    # when
    with CaptureQueriesContext(connection) as large:
        response = client.get(INDEX)

    # then
    assert response.context["dashboard"].low_stock.count == 13
    assert len(response.context["dashboard"].low_stock.worst) == 10
    # 3 for the request (session, user, roles), 3 for the admin (permissions of the user
    # and of its groups, recent actions), 13 for the dashboard: the latest seal, the low
    # levels, the outbox, the checkpoints and one count per projection (six; one more per
    # projection that is behind), the adjustments per day (one, on their projection), the
    # latest rows of each ledger.
    assert len(large) == len(small) == 19, "\n".join(q["sql"][:70] for q in large)


def test_the_worst_low_levels_come_first(db):
    # given
    location_create(code="MAIN", name="Main warehouse")
    low_level("A", on_hand=5, reorder_point=6)  # short by 1
    low_level("B", on_hand=1, reorder_point=9)  # short by 8
    low_level("C", on_hand=4, reorder_point=8)  # short by 4
    low_level("FINE", on_hand=9, reorder_point=2)

    # when
    low = stock_low_summary(limit=2)

    # then
    assert low.count == 3
    assert [(level.product.sku, level.shortfall) for level in low.worst] == [("B", 8), ("C", 4)]


def test_latest_changes_merge_both_ledgers_newest_first(db):
    # given
    location_create(code="MAIN", name="Main warehouse")
    ProductFactory(sku="MIX", track_inventory=True)
    stock_receive(sku="MIX", location="MAIN", quantity=3, audit=SYSTEM)
    order = order_create(customer_id=None, reference="M", lines={"MIX": 1}, audit=API)
    level = StockLevel.objects.get(product__sku="MIX")

    # when
    changes = ledger_changes_latest(limit=10)

    # then: the receipt, the order's creation and the reservation it made, newest first
    assert [(c.kind, c.target_id, c.change) for c in changes] == [
        ("stock", level.pk, "reserve"),
        ("order", order.pk, "order.created"),
        ("stock", level.pk, "receive"),
    ]
    assert [c.place for c in changes] == ["MIX@MAIN", f"#{order.pk} MIX", "MIX@MAIN"]


def test_the_models_are_grouped_the_way_staff_work(client):
    # given
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    # when
    response = client.get(INDEX)
    app_page = client.get(reverse("admin:app_list", args=["history"]))

    # then
    groups = response.context["app_list"]
    assert [group["name"] for group in groups] == ["Orders", "Stock", "Audit", "Settings"]
    names = {group["name"]: [str(m["name"]) for m in group["models"]] for group in groups}
    assert names["Orders"][:2] == ["Orders", "Customers"]
    assert names["Stock"][0] == "Stock levels"
    assert "SKU daily adjustments" in names["Stock"]
    assert names["Audit"][:3] == ["Order ledger", "Stock ledger", "Ledger seals"]
    assert names["Settings"][:3] == ["API tokens", "Users", "Groups"]
    assert "adjustmentss" not in response.content.decode()
    assert app_page.status_code == 200  # an app's own page keeps Django's list


def test_view_site_leads_to_the_api_docs(client):
    # given
    client.force_login(UserFactory(role="auditor"))

    # when
    response = client.get(INDEX)

    # then
    html = response.content.decode()
    assert 'href="/api/docs/"' in html
    assert "OrderTrack: orders and inventory" in html
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.parametrize(("role", "hinted"), [("order_staff", True), ("auditor", False)])
def test_only_users_who_may_retry_see_the_retry_hint(client, shop, role, hinted):
    # given
    client = client_as(client, role)

    # when
    response = client.get(INDEX)

    # then
    html = response.content.decode()
    dashboard = response.context["dashboard"]
    assert 'id="dashboard-dead-letters"' in html
    assert dashboard.dead_letters_url in html.replace("&amp;", "&")
    assert ('id="dashboard-retry-hint"' in html) is hinted
    assert ("Select the dead letters and retry them" in html) is hinted


def test_superusers_see_the_retry_hint(client, shop):
    # given
    client.force_login(UserFactory(is_superuser=True, is_staff=True))

    # when
    response = client.get(INDEX)

    # then
    assert 'id="dashboard-retry-hint"' in response.content.decode()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (119.4, "119 s"),
        (120, "2 min"),
        (7199, "119 min"),
        (7200, "2 h"),
        (172_799, "47 h"),
        (7_715_492, "89 d"),
    ],
)
def test_the_oldest_pending_age_reads_in_the_unit_that_keeps_it_short(seconds, text):
    assert duration_text(seconds) == text
