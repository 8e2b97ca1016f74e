from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from config.errors import VersionConflict
from history.audit import SYSTEM
from history.models import OrderEventType, OrderLedgerEntry, OutboxEvent, Source
from history.projector import projections_run
from inventory.models import Product
from orders import services
from orders.admin import OrderAdmin
from orders.models import Order, OrderLine, OrderStatus
from orders.timeline import line_charts
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def change_url(order: Order) -> str:
    return reverse("admin:orders_order_change", args=[order.pk])


def timeline_url(order: Order) -> str:
    return reverse("admin:orders_order_timeline", args=[order.pk])


def change_form_data(
    order: Order,
    *,
    quantities=None,
    new_lines=None,
    reason: str = "",
    reason_code: str = "correction",
    expected_version=None,
) -> dict[str, str]:
    """What the change page posts: the order form, the `lines` management form and one row
    per line, rendered from the order as it is now (so build it before any concurrent
    change to simulate a page loaded earlier)."""
    quantities = quantities or {}
    new_lines = new_lines or {}
    lines = list(OrderLine.objects.filter(order=order).select_related("product").order_by("id"))
    version = order.version if expected_version is None else expected_version
    data = {
        "reason": reason,
        "reason_code": reason_code,
        "expected_version": str(version),
        "lines-TOTAL_FORMS": str(len(lines) + len(new_lines)),
        "lines-INITIAL_FORMS": str(len(lines)),
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for i, line in enumerate(lines):
        data[f"lines-{i}-id"] = str(line.pk)
        data[f"lines-{i}-order"] = str(order.pk)
        data[f"lines-{i}-quantity"] = str(quantities.get(line.product.sku, line.quantity))
    for i, (product, quantity) in enumerate(new_lines.items(), start=len(lines)):
        data[f"lines-{i}-id"] = ""
        data[f"lines-{i}-order"] = str(order.pk)
        data[f"lines-{i}-product"] = str(product.pk)
        data[f"lines-{i}-quantity"] = str(quantity)
    return data


def add_form_data(
    *, customer=None, reference: str, lines: dict, reason_code: str = "customer_request"
) -> dict[str, str]:
    data = {
        "customer": str(customer.pk) if customer else "",
        "reference": reference,
        "reason": "",
        "reason_code": reason_code,
        "lines-TOTAL_FORMS": str(len(lines)),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for i, (product, quantity) in enumerate(lines.items()):
        data[f"lines-{i}-id"] = ""
        data[f"lines-{i}-order"] = ""
        data[f"lines-{i}-product"] = str(product.pk)
        data[f"lines-{i}-quantity"] = str(quantity)
    return data


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def quantity_of(order: Order, product) -> int:
    return OrderLine.objects.get(order=order, product=product).quantity


@pytest.fixture
def staff_client(client, user_with_role):
    client.user = user_with_role("order_staff")
    client.force_login(client.user)
    return client


@pytest.fixture
def auditor_client(client, user_with_role):
    client.force_login(user_with_role("auditor"))
    return client


def test_change_page_carries_the_version_it_was_rendered_with(staff_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})

    # when
    response = staff_client.get(change_url(order))

    # then
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="expected_version" value="1"' in content
    assert 'name="reason"' in content
    assert timeline_url(order) in content


def test_staff_edit_with_reason_writes_one_ledger_row(staff_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})
    data = change_form_data(order, quantities={product.sku: 120}, reason="Customer called")

    # when
    response = staff_client.post(change_url(order), data)

    # then
    assert response.status_code == 302
    adjustments = list(
        OrderLedgerEntry.objects.filter(order=order, event_type=OrderEventType.QUANTITY_ADJUSTED)
    )
    assert len(adjustments) == 1
    entry = adjustments[0]
    assert (entry.version, entry.delta) == (2, 20)
    assert (entry.quantity_before, entry.quantity_after) == (100, 120)
    assert entry.actor == staff_client.user.username
    assert entry.source == Source.ADMIN
    assert entry.reason == "Customer called"
    assert entry.correlation_id
    order.refresh_from_db()
    assert order.version == 2
    assert quantity_of(order, product) == 120
    log = LogEntry.objects.get(object_id=str(order.pk))
    assert "Changed quantity for order line “SKU-1”" in log.get_change_message()


def test_staff_can_add_a_line_on_the_change_page(staff_client, make_order, product, other_product):
    # given
    order = make_order(lines={product.sku: 100})
    data = change_form_data(order, new_lines={other_product: 7}, reason="Add-on")

    # when
    response = staff_client.post(change_url(order), data)

    # then
    assert response.status_code == 302
    entry = OrderLedgerEntry.objects.get(order=order, version=2)
    assert (entry.sku, entry.quantity_before, entry.quantity_after) == (other_product.sku, 0, 7)
    assert quantity_of(order, other_product) == 7


def test_quantity_change_without_reason_is_refused(staff_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})
    ledger_rows = OrderLedgerEntry.objects.count()
    data = change_form_data(order, quantities={product.sku: 120}, reason="  ")

    # when
    response = staff_client.post(change_url(order), data)

    # then
    assert response.status_code == 200
    assert "Give a reason for the quantity change" in response.content.decode()
    assert OrderLedgerEntry.objects.count() == ledger_rows
    order.refresh_from_db()
    assert order.version == 1
    assert quantity_of(order, product) == 100


def test_quantity_change_without_a_reason_code_is_refused(staff_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})
    ledger_rows = OrderLedgerEntry.objects.count()
    data = change_form_data(order, quantities={product.sku: 120}, reason="Called", reason_code="")

    # when
    response = staff_client.post(change_url(order), data)

    # then
    assert response.status_code == 200
    assert "A change through the admin needs a reason code" in response.content.decode()
    assert OrderLedgerEntry.objects.count() == ledger_rows
    order.refresh_from_db()
    assert order.version == 1
    assert quantity_of(order, product) == 100


def test_add_page_without_a_reason_code_is_refused(staff_client, customer, product):
    # given
    data = add_form_data(customer=customer, reference="REF-NC", lines={product: 5}, reason_code="")

    # when
    response = staff_client.post(reverse("admin:orders_order_add"), data)

    # then
    assert response.status_code == 200
    assert "A change through the admin needs a reason code" in response.content.decode()
    assert not Order.objects.filter(reference="REF-NC").exists()


def test_the_admin_records_the_reason_code_it_was_given(staff_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})
    data = change_form_data(order, quantities={product.sku: 90}, reason="r", reason_code="lost")

    # when
    response = staff_client.post(change_url(order), data)

    # then
    assert response.status_code == 302
    assert OrderLedgerEntry.objects.get(order=order, version=2).reason_code == "lost"


def test_without_the_admin_door_required_a_change_needs_no_code(
    staff_client, make_order, product, settings
):
    # given
    settings.REASON_CODE_REQUIRED_DOORS = []
    order = make_order(lines={product.sku: 100})
    data = change_form_data(order, quantities={product.sku: 90}, reason="r", reason_code="")

    # when
    response = staff_client.post(change_url(order), data)

    # then
    assert response.status_code == 302
    assert OrderLedgerEntry.objects.get(order=order, version=2).reason_code == "unspecified"


def test_cancel_action_without_a_reason_code_cancels_nothing(staff_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})

    # when
    response = staff_client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "cancel_orders", "_selected_action": [order.pk]},
    )

    # then
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.OPEN
    assert not OrderLedgerEntry.objects.filter(order=order, version=2).exists()
    assert any("Could not cancel any order" in m for m in messages_of(response))


def test_stale_form_is_refused_and_nothing_is_written(staff_client, make_order, product, audit):
    # given
    order = make_order(lines={product.sku: 100})
    data = change_form_data(order, quantities={product.sku: 120}, reason="From a stale page")
    services.order_set_quantities(
        order_id=order.pk, quantities={product.sku: 110}, expected_version=1, audit=audit
    )
    ledger_rows = OrderLedgerEntry.objects.count()
    events = OutboxEvent.objects.count()

    # when
    response = staff_client.post(change_url(order), data)

    # then
    assert response.status_code == 200
    content = response.content.decode()
    assert "It is now at version 2" in content
    assert "Reload the page" in content
    assert OrderLedgerEntry.objects.count() == ledger_rows
    assert OutboxEvent.objects.count() == events
    order.refresh_from_db()
    assert order.version == 2
    assert quantity_of(order, product) == 110


def test_version_conflict_inside_the_service_rolls_back_and_reports(
    staff_client, make_order, product, monkeypatch
):
    # given: a save that passes the form's check and loses the race under the row lock
    order = make_order(lines={product.sku: 100})
    data = change_form_data(order, quantities={product.sku: 120}, reason="Racing")

    def lose_the_race(**kwargs):
        raise VersionConflict(expected=kwargs["expected_version"], current=2)

    monkeypatch.setattr(services, "order_set_quantities", lose_the_race)
    ledger_rows = OrderLedgerEntry.objects.count()

    # when
    response = staff_client.post(change_url(order), data)

    # then
    assert response.status_code == 302
    assert response.url == change_url(order)
    assert any("It is now at version 2" in message for message in messages_of(response))
    assert OrderLedgerEntry.objects.count() == ledger_rows
    assert not LogEntry.objects.filter(object_id=str(order.pk)).exists()
    assert quantity_of(order, product) == 100


def test_unchanged_save_is_a_no_op(staff_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})
    ledger_rows = OrderLedgerEntry.objects.count()
    events = OutboxEvent.objects.count()

    # when
    response = staff_client.post(change_url(order), change_form_data(order))

    # then
    assert response.status_code == 302
    assert OrderLedgerEntry.objects.count() == ledger_rows
    assert OutboxEvent.objects.count() == events
    order.refresh_from_db()
    assert order.version == 1


def test_add_page_creates_the_order_through_the_service(
    staff_client, customer, product, other_product
):
    # given
    data = add_form_data(
        customer=customer, reference="REF-NEW", lines={product: 5, other_product: 8}
    )

    # when
    response = staff_client.post(reverse("admin:orders_order_add"), data)

    # then
    assert response.status_code == 302
    order = Order.objects.get(reference="REF-NEW")
    assert response.url == reverse("admin:orders_order_changelist")
    assert (order.customer_id, order.version, order.status) == (customer.pk, 1, OrderStatus.OPEN)
    entries = list(OrderLedgerEntry.objects.filter(order=order).order_by("sku"))
    assert [(e.sku, e.quantity_before, e.quantity_after) for e in entries] == [
        (product.sku, 0, 5),
        (other_product.sku, 0, 8),
    ]
    assert {(e.event_type, e.version, e.source) for e in entries} == {
        (OrderEventType.CREATED, 1, Source.ADMIN)
    }
    assert LogEntry.objects.filter(object_id=str(order.pk)).exists()


def test_add_page_needs_a_line(staff_client, customer):
    # given
    data = add_form_data(customer=customer, reference="REF-EMPTY", lines={})

    # when
    response = staff_client.post(reverse("admin:orders_order_add"), data)

    # then
    assert response.status_code == 200
    assert "An order needs at least one line." in response.content.decode()
    assert not Order.objects.filter(reference="REF-EMPTY").exists()


def test_cancel_action_reports_successes_and_failures(staff_client, make_order, product):
    # given
    open_order = make_order(lines={product.sku: 100}, reference="A")
    cancelled = make_order(lines={product.sku: 3}, reference="B")
    services.order_cancel(order_id=cancelled.pk, audit=SYSTEM)

    # when
    response = staff_client.post(
        reverse("admin:orders_order_changelist"),
        {
            "action": "cancel_orders",
            "_selected_action": [open_order.pk, cancelled.pk],
            "reason_code": "customer_request",
        },
    )

    # then
    assert response.status_code == 302
    open_order.refresh_from_db()
    assert open_order.status == OrderStatus.CANCELLED
    entry = OrderLedgerEntry.objects.get(order=open_order, event_type=OrderEventType.CANCELLED)
    assert (entry.quantity_after, entry.reason) == (0, "Cancelled in admin")
    assert entry.actor == staff_client.user.username
    messages = messages_of(response)
    assert any(f"Cancelled 1 order(s): #{open_order.pk}" in m for m in messages)
    assert any(f"Could not cancel 1 order(s): #{cancelled.pk}" in m for m in messages)


def test_cancelled_order_is_shown_read_only(staff_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})
    services.order_cancel(order_id=order.pk, audit=SYSTEM)

    # when
    response = staff_client.get(change_url(order))

    # then
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="lines-0-quantity"' not in content
    assert 'name="reason"' not in content


def test_changelist_shows_totals_without_a_query_per_order(staff_client, make_order, product):
    # given
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = staff_client.get(reverse("admin:orders_order_changelist"))
        assert response.status_code == 200
        return len(queries)

    make_order(lines={product.sku: 100}, customer=CustomerFactory())
    one_order = count_queries()
    for _ in range(4):
        make_order(lines={product.sku: 7}, customer=CustomerFactory())

    # when
    five_orders = count_queries()

    # then
    assert five_orders == one_order


@pytest.mark.django_db(transaction=True)
def test_changelist_searches_by_line_sku(staff_client, make_order, product, other_product):
    # given
    wanted = make_order(lines={other_product.sku: 4}, reference="WANTED")
    make_order(lines={product.sku: 9}, reference="OTHER")
    projections_run()

    # when
    response = staff_client.get(reverse("admin:orders_order_changelist"), {"q": "SKU-2"})

    # then
    assert response.status_code == 200
    assert [order.pk for order in response.context["cl"].result_list] == [wanted.pk]
    assert response.context["cl"].result_list[0].total_quantity == 4


@pytest.mark.django_db(transaction=True)
def test_changelist_total_comes_from_the_snapshot(staff_client, make_order, product, audit):
    # given: two projected orders, one edited since, and one the projector has not seen
    small = make_order(lines={product.sku: 3}, reference="SMALL")
    large = make_order(lines={product.sku: 50}, reference="LARGE")
    projections_run()
    services.order_set_quantities(order_id=small.pk, quantities={product.sku: 5}, audit=audit)
    projections_run()
    unseen = make_order(lines={product.sku: 7}, reference="UNSEEN")
    url = reverse("admin:orders_order_changelist")
    total_column = OrderAdmin.list_display.index("total_quantity")

    def totals(params: dict) -> list[tuple[int, int | None]]:
        response = staff_client.get(url, params)
        assert response.status_code == 200
        return [(order.pk, order.total_quantity) for order in response.context["cl"].result_list]

    # when
    response = staff_client.get(url)
    ascending = totals({"o": str(total_column + 1)})
    descending = totals({"o": f"-{total_column + 1}"})

    # then
    content = response.content.decode()
    assert '<td class="field-total_quantity">5</td>' in content
    assert '<td class="field-total_quantity">50</td>' in content
    assert '<td class="field-total_quantity">— <span class="catching-up"' in content
    assert ascending == [(small.pk, 5), (large.pk, 50), (unseen.pk, None)]
    assert [pk for pk, _ in descending] == [unseen.pk, large.pk, small.pk]


def test_timeline_shows_every_ledger_row_and_a_chart(
    staff_client, make_order, product, other_product, audit
):
    # given
    order = make_order(lines={product.sku: 100, other_product.sku: 10})
    services.order_set_quantities(
        order_id=order.pk,
        quantities={product.sku: 120, other_product.sku: 4},
        expected_version=1,
        audit=audit,
    )

    # when
    response = staff_client.get(timeline_url(order))

    # then
    assert response.status_code == 200
    content = response.content.decode()
    assert [(e.version, e.sku) for e in response.context["entries"]] == [
        (1, product.sku),
        (1, other_product.sku),
        (2, product.sku),
        (2, other_product.sku),
    ]
    assert content.count('<svg xmlns="http://www.w3.org/2000/svg" width=') == 2
    assert content.count('<polyline class="step"') == 2
    assert '<span class="delta-plus">+20</span>' in content
    assert '<span class="delta-minus">-6</span>' in content
    assert "100 → 120" in content
    assert content.count('<span class="status-badge status-info">Created</span>') == 2
    assert content.count('<span class="status-badge status-warn">Quantity adjusted</span>') == 2
    for entry in response.context["entries"]:
        assert reverse("admin:history_orderledgerentry_change", args=[entry.pk]) in content
    csv_url = reverse("order-history", kwargs={"order_id": order.pk}) + "?format=csv"
    assert f'href="{csv_url}"' in content


def test_timeline_csv_link_works_with_the_admin_session(staff_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})

    # when
    response = staff_client.get(
        reverse("order-history", kwargs={"order_id": order.pk}), {"format": "csv"}
    )

    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    assert product.sku in body


def test_timeline_of_missing_order_redirects(staff_client):
    # when
    response = staff_client.get(reverse("admin:orders_order_timeline", args=[999_999]))

    # then
    assert response.status_code == 302


def test_auditor_sees_everything_but_cannot_change(auditor_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})
    data = change_form_data(order, quantities={product.sku: 120}, reason="Not allowed")

    # when
    change_page = auditor_client.get(change_url(order))
    timeline = auditor_client.get(timeline_url(order))
    changelist = auditor_client.get(reverse("admin:orders_order_changelist"))
    post = auditor_client.post(change_url(order), data)
    add_page = auditor_client.get(reverse("admin:orders_order_add"))

    # then
    assert change_page.status_code == 200
    assert 'name="_save"' not in change_page.content.decode()
    assert timeline.status_code == 200
    assert '<polyline class="step"' in timeline.content.decode()
    assert changelist.status_code == 200
    assert post.status_code == 403
    assert add_page.status_code == 403
    assert quantity_of(order, product) == 100
    assert not OrderLedgerEntry.objects.filter(order=order, version=2).exists()


def test_auditor_cannot_run_the_cancel_action(auditor_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})

    # when
    auditor_client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "cancel_orders", "_selected_action": [order.pk]},
    )

    # then
    order.refresh_from_db()
    assert order.status == OrderStatus.OPEN


@pytest.mark.parametrize("url_name", ["changelist", "change", "timeline"])
def test_integrators_have_no_admin(client, user_with_role, make_order, product, url_name):
    # given
    order = make_order(lines={product.sku: 100})
    client.force_login(user_with_role("integrator"))
    args = [] if url_name == "changelist" else [order.pk]

    # when
    response = client.get(reverse(f"admin:orders_order_{url_name}", args=args))

    # then
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_an_integrator_made_staff_by_mistake_still_cannot_change_an_order(
    client, user_with_role, make_order, product
):
    # given: an integrator whose is_staff flag was switched on
    order = make_order(lines={product.sku: 100})
    integrator = user_with_role("integrator")
    integrator.is_staff = True
    integrator.save()
    client.force_login(integrator)
    form = change_form_data(order, quantities={product.sku: 1}, reason="sneaky")

    # when
    index = client.get(reverse("admin:index"))
    change_page = client.get(change_url(order))
    change_post = client.post(change_url(order), form)
    changelist = client.get(reverse("admin:orders_order_changelist"))
    add_page = client.get(reverse("admin:orders_order_add"))

    # then: the admin lets them in but shows and changes nothing
    assert index.status_code == 200
    assert index.context["app_list"] == []
    assert [change_page.status_code, change_post.status_code] == [403, 403]
    assert [changelist.status_code, add_page.status_code] == [403, 403]
    assert quantity_of(order, product) == 100
    assert integrator.get_all_permissions() == set()


def test_integrators_still_write_through_the_api(api_client_for, make_order, product):
    # given: an integrator, whose group holds no model permission
    api = api_client_for("integrator")
    order = make_order(lines={product.sku: 100})

    # when
    response = api.post(
        f"/api/v1/orders/{order.pk}/adjust/",
        {"sku": product.sku, "delta": -5, "reason": "broken"},
        format="json",
    )

    # then
    assert response.status_code == 200, response.content
    assert quantity_of(order, product) == 95
    assert api.user.get_all_permissions() == set()


def test_line_charts_step_through_the_quantities_on_a_shared_time_axis():
    # given
    start = datetime(2025, 1, 1, tzinfo=UTC)

    def row(sku, version, minutes, after):
        return SimpleNamespace(
            sku=sku,
            version=version,
            occurred_at=start + timedelta(minutes=minutes),
            quantity_after=after,
        )

    rows = [row("A", 1, 0, 100), row("B", 1, 0, 10), row("A", 2, 30, 120), row("A", 3, 60, 0)]

    # when
    charts = line_charts(rows, width=200, height=100)

    # then
    a, b = charts
    assert (a.sku, a.max_quantity, a.current_quantity) == ("A", 120, 0)
    assert [p.x for p in a.points] == [a.left, (a.left + a.right) / 2, a.right]
    assert a.points[1].y == a.top
    assert a.points[2].y == a.bottom
    assert a.polyline.split()[1] == f"{a.points[1].x:.1f},{a.points[0].y:.1f}"
    assert (b.current_quantity, b.points[0].y) == (10, b.top)
    assert b.polyline.split()[-1] == f"{b.right:.1f},{b.top:.1f}"


def test_line_charts_of_a_single_moment_draw_a_flat_line():
    # given
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [SimpleNamespace(sku="A", version=1, occurred_at=moment, quantity_after=0)]

    # when
    (chart,) = line_charts(rows)

    # then
    assert chart.points[0].x == chart.left
    assert chart.points[0].y == chart.bottom
    assert chart.polyline == (
        f"{chart.left:.1f},{chart.bottom:.1f} {chart.right:.1f},{chart.bottom:.1f}"
    )
    assert line_charts([]) == []


def test_new_line_product_is_picked_by_autocomplete(staff_client, product, other_product):
    # when
    response = staff_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "orders", "model_name": "orderline", "field_name": "product", "term": "gad"},
    )

    # then
    assert response.status_code == 200
    assert [result["id"] for result in response.json()["results"]] == [str(other_product.pk)]


def test_staff_adds_a_product_and_cannot_rename_its_sku(staff_client):
    # given
    data = {"sku": "NEW-1", "name": "New thing", "track_inventory": "on", "_save": "Save"}

    # when
    added = staff_client.post(reverse("admin:inventory_product_add"), data)
    product = Product.objects.get(sku="NEW-1")
    staff_client.post(
        reverse("admin:inventory_product_change", args=[product.pk]),
        {**data, "sku": "RENAMED", "name": "Renamed thing"},
    )

    # then
    assert added.status_code == 302
    product.refresh_from_db()
    assert (product.sku, product.name) == ("NEW-1", "Renamed thing")


def test_timeline_needs_view_permission(client, make_order, product):
    # given: staff status but no role, so no model permissions
    order = make_order(lines={product.sku: 100})
    client.force_login(User.objects.create_user("no-role", is_staff=True))

    # when
    response = client.get(timeline_url(order))

    # then
    assert response.status_code == 403
