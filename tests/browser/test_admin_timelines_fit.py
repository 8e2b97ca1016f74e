"""The order timeline and the stock level timeline fit a 1366 px screen: neither the page
nor the ledger table scrolls sideways, and the columns an auditor reads at a glance are
shown (the rest is in each row's disclosure or on the ledger row's own page)."""

import pytest
from django.core.management import call_command
from django.db.models import Count
from playwright.sync_api import expect

from history.models import OrderLedgerEntry, StockLedgerEntry
from inventory.models import StockLevel
from orders.models import Order

# The page's own horizontal scroll, and that of the ledger table's box (its parent, which
# scrolls sideways itself, or overflows, when the table is wider than it).
WIDTHS = """table => {
    const page = document.scrollingElement;
    const box = document.querySelector(table).parentElement;
    return [page.scrollWidth, page.clientWidth, box.scrollWidth, box.clientWidth];
}"""

# The most lines any of the cells' text takes (distinct tops of its line boxes).
LINES = """cells => Math.max(...cells.map(cell => {
    const range = document.createRange();
    range.selectNodeContents(cell);
    return new Set([...range.getClientRects()].map(rect => Math.round(rect.top))).size;
}))"""

# The columns an auditor reads at a glance.
STOCK_HEADERS = [
    "Version",
    "When",
    "Movement",
    "Δ on hand",
    "Δ reserved",
    "On hand",
    "Reserved",
    "Available",
    "Reason",
    "Who",
    "Delivery",
    "Sealed",
]
ORDER_HEADERS = [
    "Version",
    "When",
    "Event",
    "SKU",
    "Quantity",
    "Delta",
    "Reason",
    "Who",
    "Delivery",
    "Sealed",
]


@pytest.fixture
def demo(transactional_db) -> None:
    """The demo data: 90 days of orders, stock movements and outbox rows."""
    call_command("seed_demo", admin_password="pw-for-demo-1")


def busiest_stock_level() -> StockLevel:
    """The (product, location) with the most movements."""
    busiest = (
        StockLedgerEntry.objects.values("product_id", "location_id")
        .annotate(rows=Count("id"))
        .order_by("-rows")
        .first()
    )
    assert busiest["rows"] >= 30, busiest
    return StockLevel.objects.get(
        product_id=busiest["product_id"], location_id=busiest["location_id"]
    )


def busiest_order() -> Order:
    """The order with the most ledger rows."""
    busiest = (
        OrderLedgerEntry.objects.values("order_id")
        .annotate(rows=Count("id"))
        .order_by("-rows", "order_id")
        .first()
    )
    assert busiest["rows"] >= 4, busiest
    return Order.objects.get(pk=busiest["order_id"])


def assert_fits(page, table: str) -> None:
    page_width, page_client, box_width, box_client = page.evaluate(WIDTHS, table)
    assert page_width <= page_client, f"the page scrolls sideways: {page_width} > {page_client}"
    assert box_width <= box_client, f"the table scrolls sideways: {box_width} > {box_client}"


def open_the_first_rows_details(page, table: str) -> None:
    """The hash, the seal, the event id and the transaction open over the rows below, and
    the table stays as wide as it was."""
    details = page.locator(f"{table} > tbody > tr details.row-more").first
    details.locator("summary").click()
    body = details.locator(".row-more-body")
    expect(body).to_be_visible()
    expect(body.locator("code.ledger-hash")).to_be_visible()
    expect(body).to_contain_text("Transaction")
    expect(body.get_by_role("link", name="Ledger row")).to_be_visible()
    assert_fits(page, table)


def assert_times_on_one_line(page, table: str) -> None:
    """The time is each row's second cell (after the version)."""
    cells = page.locator(f"{table} > tbody > tr:not(.stock-movement) > td:nth-child(2)")
    assert cells.evaluate_all(LINES) == 1


def header_texts(page, table: str) -> list[str]:
    """As written (the admin's CSS shows headers in capitals)."""
    headers = page.locator(f"{table} thead th")
    return [text.strip() for text in headers.evaluate_all("ths => ths.map(th => th.textContent)")]


def test_the_stock_level_timeline_fits_a_1366_px_screen(
    page, admin_login, browser_user, screenshot, demo
):
    # given
    level = busiest_stock_level()
    admin_login(page, browser_user("auditor"))

    # when
    page.goto(f"/admin/inventory/stocklevel/{level.pk}/timeline/")

    # then
    rows = page.locator("#stock-timeline > tbody > tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 30
    screenshot(page)
    assert_fits(page, "#stock-timeline")
    assert_times_on_one_line(page, "#stock-timeline")
    assert header_texts(page, "#stock-timeline") == STOCK_HEADERS
    expect(rows.first.locator(".status-badge")).to_be_visible()
    open_the_first_rows_details(page, "#stock-timeline")
    screenshot(page, "details")


def test_the_order_timeline_fits_a_1366_px_screen(
    page, admin_login, browser_user, screenshot, demo
):
    # given
    order = busiest_order()
    admin_login(page, browser_user("auditor"))

    # when
    page.goto(f"/admin/orders/order/{order.pk}/timeline/")

    # then
    expect(page.locator("#timeline > tbody > tr").first).to_be_visible()
    expect(page.locator("#timeline tr.stock-movement").first).to_be_visible()
    screenshot(page)
    assert_fits(page, "#timeline")
    assert_times_on_one_line(page, "#timeline")
    assert header_texts(page, "#timeline") == ORDER_HEADERS
    expect(page.locator("#timeline > tbody > tr").first.locator(".status-badge")).to_be_visible()
    open_the_first_rows_details(page, "#timeline")
    screenshot(page, "details")
