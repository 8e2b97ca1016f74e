import io
from collections import defaultdict
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from config.models import ApiToken
from history.models import OrderLedgerEntry, OutboxEvent, StockLedgerEntry, StockMovementType
from history.selectors import order_replay, order_timeline
from inventory.models import (
    Location,
    Product,
    Reservation,
    ReservationStatus,
    StockLevel,
    Transfer,
    TransferStatus,
)
from orders.models import Customer, Order, OrderLine, OrderStatus

pytestmark = pytest.mark.django_db


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_issue_token_creates_an_integrator_whose_token_reads_orders():
    # when
    token = last_line(run("issue_token", "alice", role="integrator"))

    # then
    user = get_user_model().objects.get(username="alice")
    assert list(user.groups.values_list("name", flat=True)) == ["integrator"]
    assert not user.is_staff
    assert not user.has_usable_password()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/orders/").status_code == 200


@pytest.mark.parametrize(("role", "group"), [("staff", "order_staff"), ("auditor", "auditor")])
def test_issue_token_gives_admin_roles_staff_status(role, group):
    # when
    run("issue_token", "bob", role=role)

    # then
    user = get_user_model().objects.get(username="bob")
    assert user.is_staff
    assert user.groups.filter(name=group).exists()


def test_issue_token_twice_gives_two_different_tokens_that_both_work():
    # given
    first = last_line(run("issue_token", "alice", role="integrator"))

    # when
    output = run("issue_token", "alice", role="integrator")
    second = last_line(output)

    # then
    assert first != second
    assert "shown only once" in output
    assert get_user_model().objects.filter(username="alice").count() == 1
    assert ApiToken.objects.filter(user__username="alice").count() == 2
    for token in (first, second):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert client.get("/api/v1/orders/").status_code == 200


def test_issue_token_takes_a_name_and_a_lifetime():
    # when
    before = timezone.now()
    run("issue_token", "alice", role="auditor", name="export-job", days=7)

    # then
    token = ApiToken.objects.get(user__username="alice")
    assert token.name == "export-job"
    assert before + timedelta(days=7) <= token.expires_at <= timezone.now() + timedelta(days=7)


def test_issue_token_default_lifetime_is_api_token_ttl_days(settings):
    # given
    settings.API_TOKEN_TTL_DAYS = 3

    # when
    run("issue_token", "alice", role="integrator")

    # then
    token = ApiToken.objects.get(user__username="alice")
    assert token.expires_at - token.created_at == timedelta(days=3)


def test_issue_token_refuses_a_lifetime_beyond_the_maximum(settings):
    # given
    settings.API_TOKEN_MAX_DAYS = 30

    # when / then
    with pytest.raises(CommandError, match="from 1 to 30 days, not 31"):
        run("issue_token", "alice", role="integrator", days=31)
    assert not ApiToken.objects.exists()


def test_issue_token_refuses_an_unknown_role():
    with pytest.raises(CommandError, match="Unknown role 'boss'"):
        run("issue_token", "mallory", role="boss")
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_seed_demo_runs_twice_without_duplicating():
    # given
    run("seed_demo")
    counts = (
        Customer.objects.count(),
        Product.objects.count(),
        Order.objects.count(),
        Location.objects.count(),
        OrderLedgerEntry.objects.count(),
        StockLedgerEntry.objects.count(),
        OutboxEvent.objects.count(),
    )

    # when
    output = run("seed_demo")

    # then
    assert "already present" in output
    assert counts[:4] == (3, 6, 8, 3)
    assert counts == (
        Customer.objects.count(),
        Product.objects.count(),
        Order.objects.count(),
        Location.objects.count(),
        OrderLedgerEntry.objects.count(),
        StockLedgerEntry.objects.count(),
        OutboxEvent.objects.count(),
    )


def test_seed_demo_history_replays_to_the_current_lines():
    # when
    run("seed_demo")

    # then
    for order in Order.objects.all():
        deltas = defaultdict(int)
        for entry in OrderLedgerEntry.objects.filter(order=order):
            deltas[entry.sku] += entry.delta
        lines = {
            sku: quantity
            for sku, quantity in OrderLine.objects.filter(order=order).values_list(
                "product__sku", "quantity"
            )
        }
        assert dict(deltas) == lines, order.reference
        replayed = order_replay(order_timeline(order_id=order.pk), order_id=order.pk)
        assert replayed.problems == []
        assert (replayed.version, replayed.status) == (order.version, order.status)


def test_seed_demo_records_the_documented_adjustments():
    # when
    run("seed_demo")

    # then
    first = Order.objects.get(reference="DEMO-1001")
    changes = list(
        OrderLedgerEntry.objects.filter(order=first, event_type="order.quantity_adjusted")
        .order_by("version")
        .values_list("sku", "quantity_before", "quantity_after", "delta", "actor", "source")
    )
    assert changes == [
        ("WIDGET-100", 100, 120, 20, "demo", "system"),
        ("GADGET-200", 40, 35, -5, "demo", "system"),
    ]
    assert Order.objects.get(reference="DEMO-1002").status == OrderStatus.CANCELLED
    assert Order.objects.get(reference="DEMO-1007").status == OrderStatus.FULFILLED


def test_seed_demo_creates_locations_and_stock_for_the_orders():
    # when
    run("seed_demo")

    # then
    assert list(Location.objects.values_list("code", "type", "priority")) == [
        ("WH-MAIN", "warehouse", 10),
        ("WH-EAST", "warehouse", 20),
        ("STORE-1", "store", 30),
    ]
    assert Product.objects.filter(track_inventory=True).count() == 6
    widgets = {
        level.location.code: (level.on_hand, level.reserved)
        for level in StockLevel.objects.filter(product__sku="WIDGET-100").select_related("location")
    }
    # 150 + 80 received, 10 moved to the store; DEMO-1001 (120) and DEMO-1004 (30) hold all
    # of WH-MAIN, and the fulfilled DEMO-1007 took its 10 from WH-EAST.
    assert widgets == {"WH-MAIN": (150, 150), "WH-EAST": (60, 0), "STORE-1": (10, 0)}
    crates = StockLevel.objects.get(product__sku="CRATE-EU", location__code="WH-MAIN")
    assert (crates.on_hand, crates.reserved, crates.reorder_point, crates.is_low) == (
        38,
        18,
        25,
        True,
    )
    assert OutboxEvent.objects.filter(event_type="stock.low").exists()
    in_transit = Transfer.objects.get(status=TransferStatus.IN_TRANSIT)
    assert (in_transit.product.sku, in_transit.quantity) == ("CABLE-USB-C", 20)
    assert set(Transfer.objects.values_list("status", flat=True)) == set(TransferStatus)
    hold = Reservation.objects.get(reference="DEMO-HOLD-1")
    assert hold.status == ReservationStatus.ACTIVE and hold.expires_at is not None
    assert set(StockLedgerEntry.objects.values_list("movement", flat=True)) == set(
        StockMovementType
    )


def test_seed_demo_stock_ledger_replays_to_every_stock_level():
    # when
    run("seed_demo")

    # then
    levels = StockLevel.objects.select_related("product", "location")
    assert levels.count() == 14
    for level in levels:
        entries = list(
            StockLedgerEntry.objects.filter(
                product=level.product, location=level.location
            ).order_by("version")
        )
        place = f"{level.product.sku}@{level.location.code}"
        assert entries, place
        assert [e.version for e in entries] == list(range(1, level.version + 1)), place
        replayed = tuple(
            sum(getattr(e, f"delta_{name}") for e in entries)
            for name in ("on_hand", "reserved", "in_transit", "backorder")
        )
        current = (level.on_hand, level.reserved, level.in_transit, level.backorder)
        assert replayed == current, place
        last = entries[-1]
        assert (
            last.on_hand_after,
            last.reserved_after,
            last.in_transit_after,
            last.backorder_after,
        ) == current, place


def test_seed_demo_creates_an_admin_superuser_with_the_printed_password():
    # when
    output = run("seed_demo")

    # then
    password = last_line(output).removeprefix("  password: ")
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password(password)


def test_seed_demo_resets_the_admin_password_when_given():
    # given
    run("seed_demo")

    # when
    run("seed_demo", admin_password="correct-horse-battery")

    # then
    assert get_user_model().objects.get(username="admin").check_password("correct-horse-battery")
