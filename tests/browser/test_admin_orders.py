"""The order admin in a real browser: staff edit an order, a stale form is refused, an
auditor reads the timeline and its CSV but cannot change anything; cancel and fulfil from the
order page."""

import re

from playwright.sync_api import expect

from history.models import OrderLedgerEntry
from orders.models import Order, OrderLine


def change_path(order: Order) -> str:
    return f"/admin/orders/order/{order.pk}/change/"


def timeline_path(order: Order) -> str:
    return f"/admin/orders/order/{order.pk}/timeline/"


def test_staff_changes_a_quantity_with_a_reason_and_sees_it_on_the_timeline(
    page, admin_login, browser_user, make_order, product, screenshot
):
    # given
    order = make_order(lines={product.sku: 100})
    admin_login(page, browser_user("order_staff"))

    # when
    page.goto(change_path(order))
    page.locator('input[name="lines-0-quantity"]').fill("120")
    page.locator('select[name="reason_code"]').select_option("customer_request")
    page.locator('textarea[name="reason"]').fill("Customer phoned to add twenty")
    page.locator('input[name="_save"]').click()
    expect(page.locator(".messagelist .success")).to_be_visible()
    page.goto(change_path(order))
    page.get_by_role("link", name="Timeline").click()

    # then
    expect(page).to_have_url(re.compile(rf"/admin/orders/order/{order.pk}/timeline/$"))
    change = page.locator("#timeline tbody tr").filter(has_text="Customer phoned to add twenty")
    expect(change).to_have_count(1)
    expect(change).to_contain_text("customer_request")
    expect(change.locator(".delta-plus")).to_have_text("+20")
    expect(change).to_contain_text("100 → 120")
    screenshot(page)
    order.refresh_from_db()
    assert order.version == 2
    assert OrderLine.objects.get(order=order).quantity == 120


def test_a_stale_change_form_is_refused_and_writes_nothing(
    new_context, admin_login, browser_user, make_order, product, screenshot
):
    # given: the same order's change page open in two browsers
    order = make_order(lines={product.sku: 100})
    first, second = new_context().new_page(), new_context().new_page()
    for page in (first, second):
        admin_login(page, browser_user("order_staff"))
        page.goto(change_path(order))
    first.locator('input[name="lines-0-quantity"]').fill("120")
    first.locator('select[name="reason_code"]').select_option("correction")
    first.locator('textarea[name="reason"]').fill("First editor")
    first.locator('input[name="_save"]').click()
    expect(first.locator(".messagelist .success")).to_be_visible()

    # when: the second page, rendered at version 1, is saved
    second.locator('input[name="lines-0-quantity"]').fill("90")
    second.locator('select[name="reason_code"]').select_option("correction")
    second.locator('textarea[name="reason"]').fill("Second editor, stale")
    second.locator('input[name="_save"]').click()

    # then
    expect(second.locator(".errornote, .errorlist").first).to_be_visible()
    expect(second.locator("#content")).to_contain_text(
        "Nothing was saved: someone else changed this order while you were editing it. "
        "It is now at version 2."
    )
    screenshot(second)
    order.refresh_from_db()
    assert order.version == 2
    assert OrderLine.objects.get(order=order).quantity == 120
    assert not OrderLedgerEntry.objects.filter(order_id=order.pk, version__gt=2).exists()
    assert not OrderLedgerEntry.objects.filter(reason="Second editor, stale").exists()


def test_auditor_reads_the_timeline_and_downloads_its_csv_but_cannot_edit(
    page, admin_login, browser_user, make_order, product, screenshot
):
    # given
    order = make_order(lines={product.sku: 100})
    admin_login(page, browser_user("auditor"))

    # when
    page.goto(timeline_path(order))
    expect(page.locator("#timeline tbody tr")).to_have_count(1)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    screenshot(page)
    page.goto(change_path(order))

    # then
    header = download.path().read_text().splitlines()[0].split(",")
    assert "hash" in header
    assert download.suggested_filename.endswith(".csv")
    expect(page.locator("#content h1")).to_be_visible()
    expect(page.locator('input[name="_save"], input[name="_continue"]')).to_have_count(0)
    expect(page.locator("a.deletelink")).to_have_count(0)
    expect(page.get_by_role("link", name="Timeline")).to_be_visible()
    screenshot(page, "change-page")


def test_staff_cancel_an_order_from_its_page_and_its_stock_is_released(
    page, admin_login, browser_user, make_order, audit, screenshot
):
    # given: an order of 50 held at two locations, 10 of them backordered
    from inventory.models import StockLevel
    from inventory.services import location_create, stock_receive
    from orders.models import OrderStatus
    from tests.factories import ProductFactory

    ProductFactory(sku="TRK-1", track_inventory=True, allow_backorder=True)
    location_create(code="WH-A", name="First", priority=1)
    location_create(code="WH-B", name="Second", priority=2)
    stock_receive(sku="TRK-1", location="WH-A", quantity=30, audit=audit)
    stock_receive(sku="TRK-1", location="WH-B", quantity=10, audit=audit)
    order = make_order(lines={"TRK-1": 50})
    admin_login(page, browser_user("order_staff"))
    page.goto(change_path(order))
    stock = page.locator("#order-stock tbody tr")
    expect(stock).to_have_count(2)
    expect(stock.nth(0)).to_contain_text("WH-A")
    expect(stock.nth(0).locator(".backordered")).to_have_text("10")
    expect(page.locator("#order-stock-movements")).to_be_visible()
    expect(page.get_by_role("link", name="History", exact=True)).to_have_count(0)
    screenshot(page, "before")

    # when
    page.locator('select[name="close-reason_code"]').select_option("customer_request")
    page.locator('textarea[name="close-reason"]').fill("Customer withdrew the order")
    page.get_by_role("button", name="Cancel order").click()

    # then
    expect(page.locator(".messagelist .success")).to_contain_text("Cancelled order")
    expect(page.locator("#order-close")).to_have_count(0)
    screenshot(page)
    order.refresh_from_db()
    assert (order.status, order.version) == (OrderStatus.CANCELLED, 2)
    row = OrderLedgerEntry.objects.get(order_id=order.pk, version=2)
    assert (row.reason, row.reason_code) == ("Customer withdrew the order", "customer_request")
    assert not StockLevel.objects.filter(reserved__gt=0).exists()
    page.get_by_role("link", name="Timeline", exact=True).click()
    expect(page.locator("#timeline")).to_contain_text("Customer withdrew the order")


def test_staff_fulfil_an_order_from_its_page_once_its_backorder_is_in_stock(
    page, admin_login, browser_user, make_order, audit, screenshot
):
    # given: an order of 12, 10 on hand and 2 backordered
    from inventory.models import StockLevel
    from inventory.services import location_create, stock_receive
    from orders.models import OrderStatus
    from tests.factories import ProductFactory

    ProductFactory(sku="FUL-1", track_inventory=True, allow_backorder=True)
    location_create(code="WH-A", name="First", priority=1)
    stock_receive(sku="FUL-1", location="WH-A", quantity=10, audit=audit)
    order = make_order(lines={"FUL-1": 12})
    admin_login(page, browser_user("order_staff"))
    page.goto(change_path(order))
    fulfil = page.get_by_role("button", name="Fulfil order")
    expect(fulfil).to_be_disabled()
    expect(page.locator("#order-fulfil-blocked")).to_contain_text("FUL-1@WH-A is 2 short")
    screenshot(page, "blocked")

    # when: the missing units arrive and staff fulfil the order
    stock_receive(sku="FUL-1", location="WH-A", quantity=5, audit=audit)
    page.reload()
    page.locator('select[name="close-reason_code"]').select_option("customer_request")
    page.locator('textarea[name="close-reason"]').fill("Shipped to the customer")
    page.get_by_role("button", name="Fulfil order").click()

    # then
    expect(page.locator(".messagelist .success")).to_contain_text("Fulfilled order")
    screenshot(page)
    order.refresh_from_db()
    assert (order.status, order.version) == (OrderStatus.FULFILLED, 2)
    row = OrderLedgerEntry.objects.get(order_id=order.pk, version=2)
    assert (row.event_type, row.reason) == ("order.fulfilled", "Shipped to the customer")
    level = StockLevel.objects.get(product__sku="FUL-1", location__code="WH-A")
    assert (level.on_hand, level.reserved, level.backorder) == (3, 0, 0)
