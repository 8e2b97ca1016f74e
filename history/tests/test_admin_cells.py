"""The changelists' cells: coloured status badges, "is low" as a warning only when low, and
projected figures marked while their projection catches up."""

import pytest
from django.contrib.admin.sites import site
from django.urls import reverse

from history.admin import OutboxEventAdmin
from history.admin_cells import badge, order_total_cell
from history.models import OrderSnapshot, OutboxEvent
from history.selectors import OutboxStatus
from inventory.admin import StockLevelAdmin, catching_up
from inventory.models import StockLevel
from orders.services import order_set_quantities


def test_a_badge_carries_its_tone_and_title():
    html = badge("low", tone="warn", title="Available 1 ≤ reorder point 5.")
    assert html == (
        '<span class="status-badge status-warn" title="Available 1 ≤ reorder point 5.">low</span>'
    )


def test_outbox_status_is_a_coloured_badge_shown_first():
    # given
    event = OutboxEvent()
    event.status = OutboxStatus.DEAD_LETTERED  # as annotated by outbox_with_status
    model_admin = OutboxEventAdmin(OutboxEvent, site)

    # when
    html = model_admin.status_badge(event)

    # then
    assert model_admin.list_display[0] == "status_badge"
    assert 'class="status-badge status-bad"' in html
    assert "Dead" in html


def test_is_low_is_a_warning_when_low_and_nothing_when_fine():
    model_admin = StockLevelAdmin(StockLevel, site)
    low = StockLevel(is_low=True, available=2, reorder_point=5, safety_stock=1)
    fine = StockLevel(is_low=False, available=9, reorder_point=5, safety_stock=1)

    assert 'class="status-badge status-warn"' in model_admin.low_badge(low)
    assert "Available 2 ≤ reorder point 5" in model_admin.low_badge(low)
    assert model_admin.low_badge(fine) == ""


@pytest.mark.parametrize(
    ("total", "snapshot_version", "version", "marked"),
    [(7, 3, 3, False), (7, 2, 3, True), (None, None, 1, True)],
)
def test_an_order_total_is_marked_while_its_snapshot_is_behind(
    total, snapshot_version, version, marked
):
    html = str(order_total_cell(total=total, snapshot_version=snapshot_version, version=version))
    assert ("catching up" in html) is marked
    if marked and total is not None:
        assert f"from version {snapshot_version} of the order, which is now at version " in html


def test_a_projected_stock_total_is_marked_when_the_levels_differ():
    assert catching_up(10, live=10, what="on hand") == "10"
    html = catching_up(10, live=12, what="on hand")
    assert html.startswith("10 ") and "catching up" in html and "say 12 on hand" in html


@pytest.mark.django_db
def test_orders_list_marks_a_total_whose_snapshot_is_behind(
    client, user_with_role, make_order, product, audit
):
    # given: a snapshot at version 1, the order moved on to version 2
    order = make_order(lines={product.sku: 5})
    OrderSnapshot.objects.create(order=order, total_quantity=5, last_version=1)
    order_set_quantities(order_id=order.pk, quantities={product.sku: 8}, audit=audit)
    client.force_login(user_with_role("order_staff"))
    url = reverse("admin:orders_order_changelist")

    # when
    behind = client.get(url).content.decode()
    OrderSnapshot.objects.filter(order=order).update(total_quantity=8, last_version=2)
    caught_up = client.get(url).content.decode()

    # then
    assert "this total is from version 1 of the order, which is now at version 2" in behind
    assert "catching up" not in caught_up
    assert "history/badges.css" in caught_up
