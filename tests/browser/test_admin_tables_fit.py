"""Every admin changelist the index links to fits a 1366 px screen: no horizontal scroll."""

from django.core.management import call_command
from playwright.sync_api import expect

from history.models import OrderLedgerEntry, OutboxEvent, StockLedgerEntry
from inventory.models import StockLevel
from orders.models import Order

# The page's own horizontal scroll, and the results table's: the admin wraps the table in a
# `.results` box with `overflow-x: auto`, so a table too wide scrolls inside it, not the page.
WIDTHS = """() => {
    const page = document.scrollingElement;
    const table = document.querySelector("#changelist .results") || page;
    return [page.scrollWidth, page.clientWidth, table.scrollWidth, table.clientWidth];
}"""


def test_every_changelist_fits_a_1366_px_screen(page, admin_login, browser_user, screenshot):
    # given: the demo data (orders, stock levels, both ledgers, outbox rows with dead
    # letters) and its projections
    call_command("seed_demo", admin_password="pw-for-demo-1")
    call_command("rebuild_projections")
    for model in (Order, StockLevel, OrderLedgerEntry, StockLedgerEntry, OutboxEvent):
        assert model.objects.exists(), model
    admin_login(page, browser_user("order_staff"))

    # when
    page.goto("/admin/")
    links = page.locator('tr[class^="model-"] th[scope="row"] a')
    expect(links.first).to_be_visible()
    paths = links.evaluate_all("links => links.map(link => link.getAttribute('href'))")

    # then
    assert len(paths) >= 10, paths
    too_wide = {}
    for path in paths:
        page.goto(path)
        expect(page.locator("#changelist")).to_be_visible()
        page_width, page_client, table_width, table_client = page.evaluate(WIDTHS)
        name = path.strip("/").removeprefix("admin/").replace("/", "-")
        screenshot(page, name)
        if page_width > page_client or table_width > table_client:
            too_wide[path] = (page_width, page_client, table_width, table_client)
    assert not too_wide, f"scrolls sideways (page, its width, table, its width): {too_wide}"
