"""The admin index's dashboard in a real browser: staff and auditors see its figures (low
stock, dead letters, the chart of both ledgers, the latest changes) laid out without gaps at
1366 px, and a figure's link opens the filtered list behind it."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from history.audit import Audit
from history.models import OutboxEvent, Source
from history.projector import projections_run
from inventory.services import location_create, stock_receive, stock_set_thresholds
from orders.services import order_create, order_set_quantities
from tests.factories import ProductFactory

SYSTEM = Audit(actor="setup", source=Source.SYSTEM, reason="browser dashboard test")
ADMIN = Audit(
    actor="clerk", source=Source.ADMIN, reason="browser dashboard test", reason_code="correction"
)


@pytest.fixture
def shop(transactional_db) -> OutboxEvent:
    """An order changed twice, one stock level below its reorder point, and one dead-lettered
    outbox event (returned), with the projections caught up."""
    location_create(code="MAIN", name="Main warehouse")
    product = ProductFactory(sku="DASH-1")
    order = order_create(customer_id=None, reference="D1", lines={product.sku: 5}, audit=SYSTEM)
    order_set_quantities(order_id=order.pk, quantities={product.sku: 7}, audit=ADMIN)
    ProductFactory(sku="LOW-1", track_inventory=True)
    stock_receive(sku="LOW-1", location="MAIN", quantity=3, audit=SYSTEM)
    stock_set_thresholds(
        sku="LOW-1", location="MAIN", reorder_point=10, safety_stock=0, audit=SYSTEM
    )
    dead = OutboxEvent.objects.filter(published_at__isnull=True).order_by("-id").first()
    OutboxEvent.objects.filter(pk=dead.pk).update(
        attempts=8, last_error="connection refused", dead_lettered_at=timezone.now()
    )
    projections_run()
    return dead


def expect_the_figures(page) -> None:
    dashboard = page.locator("#dashboard")
    expect(dashboard).to_be_visible()
    expect(page.locator("#dashboard-low-stock")).to_have_text("1")
    expect(page.locator("#dashboard-stock")).to_contain_text("LOW-1@MAIN")
    expect(page.locator("#dashboard-dead-letters")).to_have_text("1")
    expect(page.locator("#dashboard-adjustments svg")).to_be_visible()
    expect(page.locator("#dashboard-chart-order rect").first).to_be_attached()
    expect(page.locator("#dashboard-chart-stock rect").first).to_be_attached()
    expect(page.locator("#dashboard-adjustments")).to_contain_text("Stock movements: 1")
    changes = page.locator("#dashboard-changes tbody tr")
    expect(changes.first).to_be_visible()
    expect(page.locator("#dashboard-changes")).to_contain_text("DASH-1")
    expect(page.locator("#dashboard-changes")).to_contain_text("clerk")


def expect_the_layout(page) -> None:
    """Stock | Event delivery, then the chart | Ledger seals, then the latest changes across
    both; nothing wider than the window."""
    box = {
        name: page.locator(f"#dashboard-{name}").bounding_box()
        for name in ("stock", "delivery", "adjustments", "seal", "changes")
    }
    assert box["stock"]["y"] == box["delivery"]["y"] < box["adjustments"]["y"]
    assert box["adjustments"]["y"] == box["seal"]["y"] < box["changes"]["y"]
    assert box["stock"]["x"] == box["adjustments"]["x"] == box["changes"]["x"]
    assert box["delivery"]["x"] == box["seal"]["x"] > box["adjustments"]["x"]
    chart = page.locator("#dashboard-adjustments svg").bounding_box()
    assert chart["x"] + chart["width"] <= box["adjustments"]["x"] + box["adjustments"]["width"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_staff_see_the_dashboard_and_follow_dead_letters_to_the_filtered_outbox(
    page, admin_login, browser_user, shop, screenshot
):
    # given
    admin_login(page, browser_user("order_staff"))

    # when
    page.goto("/admin/")

    # then
    expect_the_figures(page)
    expect_the_layout(page)
    screenshot(page)

    # when
    page.locator("#dashboard-dead-letters").click()

    # then
    expect(page).to_have_url(re.compile(r"/admin/history/outboxevent/\?.*status=dead_lettered"))
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(shop.event_type)
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() > 1  # the rest: hidden
    screenshot(page, "outbox")


def test_an_auditor_sees_the_dashboard(page, admin_login, browser_user, shop, screenshot):
    # given
    admin_login(page, browser_user("auditor"))

    # when
    page.goto("/admin/")

    # then
    expect_the_figures(page)
    expect(page.locator("#content-main a.addlink")).to_have_count(0)  # reads, never adds
    screenshot(page)


def test_a_stock_bar_of_the_chart_opens_the_days_stock_movements(
    page, admin_login, browser_user, shop, screenshot
):
    # given
    admin_login(page, browser_user("auditor"))
    page.goto("/admin/")

    # when
    page.locator("#dashboard-chart-stock a").first.click()

    # then: the stock ledger, filtered on today and the source (the receipt)
    expect(page).to_have_url(
        re.compile(r"/admin/history/stockledgerentry/\?.*source__exact=system")
    )
    expect(page).to_have_url(re.compile(r"occurred_at__gte=.*occurred_at__lt="))
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("LOW-1@MAIN")
    screenshot(page)
