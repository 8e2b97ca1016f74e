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
from inventory.selectors import stock_forecast_get
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
        .values_list(
            "sku", "quantity_before", "quantity_after", "delta", "actor", "source", "reason_code"
        )
    )
    assert changes == [
        ("WIDGET-100", 100, 120, 20, "clerk.jo", "admin", "customer_request"),
        ("GADGET-200", 40, 35, -5, "clerk.jo", "admin", "damaged"),
    ]
    cancelled = OrderLedgerEntry.objects.filter(event_type="order.cancelled").first()
    assert (cancelled.actor, cancelled.source) == ("webshop-sync", "api")
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
    # 150 received at WH-MAIN, all held by DEMO-1001 (120) and DEMO-1004 (30); the store is
    # supplied from WH-EAST and sells from its own shelf.
    assert widgets["WH-MAIN"] == (150, 150)
    assert set(widgets) == {"WH-MAIN", "WH-EAST", "STORE-1"}
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
    assert levels.count() == 15
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


def _days_ago(moment) -> int:
    return (timezone.localdate() - timezone.localtime(moment).date()).days


def test_seed_demo_spreads_its_history_over_the_last_90_days_in_order():
    # when
    run("seed_demo")

    # then
    for model in (OrderLedgerEntry, StockLedgerEntry, OutboxEvent):
        field = "created_at" if model is OutboxEvent else "occurred_at"
        times = list(model.objects.order_by("id").values_list(field, flat=True))
        assert times == sorted(times), model.__name__
        assert all(0 <= _days_ago(moment) < 90 for moment in times), model.__name__
    days = {
        timezone.localtime(moment).date()
        for moment in [
            *OrderLedgerEntry.objects.values_list("occurred_at", flat=True),
            *StockLedgerEntry.objects.values_list("occurred_at", flat=True),
        ]
    }
    assert len(days) >= 60
    # the orders are made and changed over the whole window, the last ones within 30 days
    order_days = {
        _days_ago(m) for m in OrderLedgerEntry.objects.values_list("occurred_at", flat=True)
    }
    assert len(order_days) >= 15
    assert max(order_days) >= 80 and min(order_days) <= 30
    for order in Order.objects.all():
        assert order.created_at == (
            OrderLedgerEntry.objects.filter(order=order, version=1).first().occurred_at
        )


def test_seed_demo_leaves_orders_in_every_status_changed_on_other_days():
    # when
    run("seed_demo")

    # then
    assert set(Order.objects.values_list("status", flat=True)) == set(OrderStatus)
    for reference in ("DEMO-1002", "DEMO-1007"):  # cancelled, fulfilled
        order = Order.objects.get(reference=reference)
        assert order.updated_at.date() > order.created_at.date(), reference


def test_seed_demo_records_receipts_counts_and_transfers_with_reason_codes():
    # when
    run("seed_demo")

    # then
    entries = StockLedgerEntry.objects.all()
    counts = entries.filter(movement=StockMovementType.COUNT)
    assert counts.count() >= 10
    assert set(counts.values_list("reason_code", flat=True)) == {"cycle_count"}
    adjusted = set(
        entries.filter(movement=StockMovementType.ADJUST).values_list("reason_code", flat=True)
    )
    assert {"damaged", "return", "found"} <= adjusted
    assert "unspecified" not in adjusted
    assert entries.filter(movement=StockMovementType.RECEIVE).count() >= 20
    assert Transfer.objects.filter(status=TransferStatus.RECEIVED).count() >= 20
    receipt_days = {
        _days_ago(m)
        for m in entries.filter(movement=StockMovementType.RECEIVE).values_list(
            "occurred_at", flat=True
        )
    }
    assert len(receipt_days) >= 5


def test_seed_demo_gives_the_forecast_a_daily_demand():
    # when
    run("seed_demo")

    # then
    forecast = stock_forecast_get(sku="CABLE-USB-C")
    assert sum(1 for day in forecast.series if day.demand) >= 15
    assert forecast.smoothed_daily_demand > 0


def test_seed_demo_dead_letters_a_few_events_through_the_relay(settings):
    # when
    run("seed_demo")

    # then
    dead = OutboxEvent.objects.filter(dead_lettered_at__isnull=False)
    assert dead.count() == 3
    for event in dead:
        assert event.attempts == settings.RELAY_MAX_ATTEMPTS
        assert event.last_error == "the broker refused (nack)"
        assert event.created_at < event.dead_lettered_at < event.created_at + timedelta(hours=1)
        later = OutboxEvent.objects.filter(
            aggregate_type=event.aggregate_type, aggregate_id=event.aggregate_id, id__gt=event.id
        )
        assert not later.exists()  # nothing waits behind a dead letter
    assert OutboxEvent.objects.filter(dead_lettered_at__isnull=True).count() > 300


@pytest.mark.django_db(transaction=True)  # the projector and the seals read committed rows
def test_seed_demo_passes_verify_ledger():
    # given
    run("seed_demo")

    # when
    output = run("verify_ledger")

    # then
    assert "every hash chain is intact" in output
