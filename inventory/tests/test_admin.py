from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from history.audit import Audit
from history.models import OutboxEvent, Source, StockLedgerEntry, StockMovementType
from inventory.models import (
    Location,
    Product,
    Reservation,
    ReservationStatus,
    StockLevel,
    Transfer,
    TransferStatus,
)
from inventory.services import (
    location_create,
    reservation_create,
    stock_receive,
    transfer_create,
)
from inventory.timeline import MOVEMENT_BADGES, stock_chart, timeline_rows
from orders.models import Order, OrderStatus
from orders.services import order_cancel, order_create
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

LEVELS = reverse("admin:inventory_stocklevel_changelist")
RESERVATIONS = reverse("admin:inventory_reservation_changelist")
TRANSFERS = reverse("admin:inventory_transfer_changelist")
ORDERS = reverse("admin:orders_order_changelist")
SETUP = Audit(actor="setup", source=Source.SYSTEM, reason="setup")


# --- Fixtures and helpers ---------------------------------------------------------------


@pytest.fixture
def tracked(db):
    return ProductFactory(sku="TRK-1", name="Tracked widget", track_inventory=True)


@pytest.fixture
def other(db):
    return ProductFactory(sku="TRK-2", name="Tracked gadget", track_inventory=True)


@pytest.fixture
def main(db):
    return location_create(code="MAIN", name="Main warehouse", priority=10)


@pytest.fixture
def store(db):
    return location_create(code="STORE", name="Corner store", type="store", priority=20)


def _client_for(client, user):
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def staff_client(client):
    return _client_for(client, UserFactory(role="order_staff"))


@pytest.fixture
def auditor_client(client):
    return _client_for(client, UserFactory(role="auditor"))


@pytest.fixture
def superuser_client(client):
    return _client_for(client, UserFactory(is_staff=True, is_superuser=True))


def receive(product, location, quantity) -> StockLevel:
    return stock_receive(sku=product.sku, location=location.code, quantity=quantity, audit=SETUP)


def numbers(product, location) -> tuple[int, int, int, int, int]:
    level = StockLevel.objects.get(product=product, location=location)
    return level.on_hand, level.reserved, level.available, level.in_transit, level.backorder


def open_action(client, url: str, action: str, objects):
    """What the changelist posts when an action is picked: it shows the action's form."""
    return client.post(
        url, {"action": action, "_selected_action": [o.pk for o in objects], "index": "0"}
    )


def apply_action(client, url: str, action: str, objects, **data):
    """What the action's form page posts when it is submitted (with a reason code unless
    one is given)."""
    data.setdefault("reason_code", "correction")
    payload = {"action": action, "_selected_action": [o.pk for o in objects], "apply": "yes"}
    payload.update({key: str(value) for key, value in data.items()})
    return client.post(url, payload)


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def ledger(product, location) -> list[tuple]:
    return list(
        StockLedgerEntry.objects.filter(product=product, location=location)
        .order_by("version")
        .values_list("movement", "delta_on_hand", "on_hand_after", "actor", "source", "reason")
    )


# --- Locations --------------------------------------------------------------------------


def test_staff_add_a_location_and_cannot_change_its_code(staff_client):
    # when
    response = staff_client.post(
        reverse("admin:inventory_location_add"),
        {
            "code": "WH-9",
            "name": "Ninth warehouse",
            "type": "warehouse",
            "address": "",
            "priority": "5",
            "active": "on",
            "_save": "Save",
        },
    )

    # then
    assert response.status_code == 302
    location = Location.objects.get(code="WH-9")
    assert (location.name, location.priority, location.active) == ("Ninth warehouse", 5, True)
    change = staff_client.get(reverse("admin:inventory_location_change", args=[location.pk]))
    assert 'name="code"' not in change.content.decode()
    assert 'name="priority"' in change.content.decode()


def test_location_list_filters_by_type(staff_client, main, store):
    # when
    response = staff_client.get(reverse("admin:inventory_location_changelist") + "?type=store")

    # then
    assert response.status_code == 200
    assert [loc.code for loc in response.context["cl"].result_list] == ["STORE"]


# --- Stock levels: read-only quantities -------------------------------------------------


def test_stock_quantities_are_not_editable_in_the_admin(staff_client, tracked, main):
    # given
    level = receive(tracked, main, 10)
    url = reverse("admin:inventory_stocklevel_change", args=[level.pk])

    # when
    page = staff_client.get(url)
    posted = staff_client.post(url, {"on_hand": "999", "reserved": "0", "_save": "Save"})
    added = staff_client.get(reverse("admin:inventory_stocklevel_add"))

    # then
    assert page.status_code == 200
    content = page.content.decode()
    for name in ("on_hand", "reserved", "in_transit", "backorder", "reorder_point"):
        assert f'name="{name}"' not in content
    assert reverse("admin:inventory_stocklevel_timeline", args=[level.pk]) in content
    assert "<h2>TRK-1@MAIN</h2>" in content
    assert posted.status_code == 403
    assert added.status_code == 403
    assert numbers(tracked, main) == (10, 0, 10, 0, 0)


def test_stock_list_shows_the_numbers_in_few_queries(staff_client, tracked, other, main, store):
    # given
    for product in (tracked, other):
        for location in (main, store):
            receive(product, location, 5)

    # when
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(LEVELS)

    # then
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 4
    content = response.content.decode()
    assert "TRK-1" in content and "Timeline" in content
    assert len(queries) <= 12  # session, user, groups, filters, count, one page query


def test_low_stock_filter_uses_available_against_the_reorder_point(
    superuser_client, tracked, other, main
):
    # given: TRK-1 has 3 available with reorder point 5; TRK-2 has 10
    receive(tracked, main, 3)
    receive(other, main, 10)
    StockLevel.objects.update(reorder_point=5)

    # when
    low = superuser_client.get(LEVELS + "?low=yes")
    fine = superuser_client.get(LEVELS + "?low=no")

    # then
    assert [lvl.product.sku for lvl in low.context["cl"].result_list] == ["TRK-1"]
    assert [lvl.product.sku for lvl in fine.context["cl"].result_list] == ["TRK-2"]


def test_stock_list_searches_by_sku(staff_client, tracked, other, main):
    # given
    receive(tracked, main, 1)
    receive(other, main, 1)

    # when
    response = staff_client.get(LEVELS + "?q=TRK-2")

    # then
    assert [lvl.product.sku for lvl in response.context["cl"].result_list] == ["TRK-2"]


# --- Stock level actions ----------------------------------------------------------------


def test_an_action_first_shows_its_form_with_the_selected_levels(staff_client, tracked, main):
    # given
    level = receive(tracked, main, 10)

    # when
    response = open_action(staff_client, LEVELS, "receive_stock", [level])

    # then
    assert response.status_code == 200
    assert "admin/inventory/stocklevel/action_form.html" in [t.name for t in response.templates]
    content = response.content.decode()
    assert 'name="quantity"' in content and 'name="reason"' in content
    assert f'name="_selected_action" value="{level.pk}"' in content
    assert 'name="action" value="receive_stock"' in content
    assert StockLedgerEntry.objects.count() == 1


def test_receive_action_adds_stock_at_each_level_with_the_reason(
    staff_client, tracked, main, store
):
    # given
    levels = [receive(tracked, main, 10), receive(tracked, store, 1)]

    # when
    response = apply_action(
        staff_client, LEVELS, "receive_stock", levels, quantity=5, reason="Delivery 42"
    )

    # then
    assert response.status_code == 302
    assert numbers(tracked, main) == (15, 0, 15, 0, 0)
    assert numbers(tracked, store) == (6, 0, 6, 0, 0)
    username = staff_client.user.get_username()
    assert ledger(tracked, main)[-1] == ("receive", 5, 15, username, "admin", "Delivery 42")
    assert StockLedgerEntry.objects.filter(source="admin").exclude(correlation_id="").count() == 2
    assert messages_of(response) == [
        (
            "success",
            "Received stock at 2 stock level(s): TRK-1@MAIN on hand 15; TRK-1@STORE on hand 6.",
        ),
    ]


def test_adjust_action_reports_a_refused_row_and_writes_nothing_for_it(
    staff_client, tracked, other, main
):
    # given: TRK-1 has 10 on hand of which 8 are reserved; TRK-2 has 10
    first = receive(tracked, main, 10)
    second = receive(other, main, 10)
    reservation_create(sku=tracked.sku, quantity=8, audit=SETUP)
    rows_before = StockLedgerEntry.objects.count()
    events_before = OutboxEvent.objects.count()

    # when
    response = apply_action(
        staff_client, LEVELS, "adjust_stock", [first, second], delta=-4, reason="Broken"
    )

    # then
    assert response.status_code == 302
    assert numbers(tracked, main) == (10, 8, 2, 0, 0)
    assert numbers(other, main) == (6, 0, 6, 0, 0)
    assert StockLedgerEntry.objects.count() == rows_before + 1
    assert OutboxEvent.objects.count() == events_before + 1
    assert messages_of(response) == [
        (
            "error",
            "TRK-1@MAIN: nothing was written. Cannot take 4 of TRK-1 at MAIN: only 2 available.",
        ),
        ("success", "Adjusted stock at 1 stock level(s): TRK-2@MAIN on hand 6."),
    ]


def test_adjust_action_adds_with_a_positive_delta_and_refuses_zero(staff_client, tracked, main):
    # given
    level = receive(tracked, main, 10)

    # when
    zero = apply_action(staff_client, LEVELS, "adjust_stock", [level], delta=0, reason="x")
    plus = apply_action(staff_client, LEVELS, "adjust_stock", [level], delta=3, reason="Found")

    # then
    assert zero.status_code == 200
    assert "A change of 0 changes nothing." in zero.content.decode()
    assert plus.status_code == 302
    assert numbers(tracked, main) == (13, 0, 13, 0, 0)
    assert ledger(tracked, main)[-1][:3] == ("adjust", 3, 13)


@pytest.mark.parametrize(
    ("action", "data"), [("adjust_stock", {"delta": -1}), ("count_stock", {"counted": 4})]
)
def test_adjust_and_count_forms_without_a_reason_code_are_refused(
    staff_client, tracked, main, action, data
):
    # given
    level = receive(tracked, main, 10)
    rows = StockLedgerEntry.objects.count()

    # when
    response = apply_action(
        staff_client, LEVELS, action, [level], reason="r", reason_code="", **data
    )

    # then
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert StockLedgerEntry.objects.count() == rows
    assert numbers(tracked, main) == (10, 0, 10, 0, 0)


def test_without_the_admin_door_required_only_adjust_and_count_need_a_code(
    staff_client, tracked, main, settings
):
    # given
    settings.REASON_CODE_REQUIRED_DOORS = []
    level = receive(tracked, main, 10)

    # when
    received = apply_action(
        staff_client, LEVELS, "receive_stock", [level], quantity=2, reason="r", reason_code=""
    )
    adjusted = apply_action(
        staff_client, LEVELS, "adjust_stock", [level], delta=-1, reason="r", reason_code=""
    )

    # then
    assert (received.status_code, adjusted.status_code) == (302, 200)
    assert numbers(tracked, main) == (12, 0, 12, 0, 0)
    assert StockLedgerEntry.objects.order_by("-id").first().reason_code == "unspecified"


def test_the_stock_admin_records_the_reason_code_and_the_timeline_shows_it(
    staff_client, tracked, main
):
    # given
    level = receive(tracked, main, 10)

    # when
    apply_action(
        staff_client, LEVELS, "adjust_stock", [level], delta=-2, reason="r", reason_code="damaged"
    )
    timeline = staff_client.get(reverse("admin:inventory_stocklevel_timeline", args=[level.pk]))

    # then
    assert StockLedgerEntry.objects.order_by("-id").first().reason_code == "damaged"
    assert "<code>damaged</code>" in timeline.content.decode()


def test_count_action_sets_on_hand_and_refuses_a_count_below_reserved(
    staff_client, tracked, other, main
):
    # given
    first = receive(tracked, main, 10)
    second = receive(other, main, 10)
    reservation_create(sku=other.sku, quantity=6, audit=SETUP)

    # when
    response = apply_action(
        staff_client, LEVELS, "count_stock", [first, second], counted=4, reason="Stocktake"
    )

    # then
    assert numbers(tracked, main) == (4, 0, 4, 0, 0)
    assert ledger(tracked, main)[-1][:3] == ("count", -6, 4)
    assert numbers(other, main) == (10, 6, 4, 0, 0)
    errors = [text for level, text in messages_of(response) if level == "error"]
    assert len(errors) == 1 and errors[0].startswith("TRK-2@MAIN: nothing was written.")
    assert "6 are reserved" in errors[0]


def test_transfer_action_ships_to_the_destination(staff_client, tracked, main, store):
    # given
    level = receive(tracked, main, 10)

    # when
    response = apply_action(
        staff_client,
        LEVELS,
        "transfer_stock",
        [level],
        to_location=store.pk,
        quantity=4,
        reason="Restock",
    )

    # then
    assert response.status_code == 302
    assert numbers(tracked, main) == (6, 0, 6, 0, 0)
    assert numbers(tracked, store) == (0, 0, 0, 4, 0)
    transfer = Transfer.objects.get()
    assert (transfer.quantity, transfer.status, transfer.reason) == (4, "in_transit", "Restock")
    assert messages_of(response) == [
        ("success", f"Shipped 1 transfer(s): TRK-1@MAIN → STORE: transfer #{transfer.pk}.")
    ]


def test_transfer_action_reports_rows_it_cannot_ship(staff_client, tracked, main, store):
    # given: one level is the destination itself, the other lacks stock
    at_store = receive(tracked, store, 10)
    at_main = receive(tracked, main, 2)

    # when
    response = apply_action(
        staff_client,
        LEVELS,
        "transfer_stock",
        [at_main, at_store],
        to_location=store.pk,
        quantity=3,
        reason="Restock",
    )

    # then
    assert Transfer.objects.count() == 0
    assert numbers(tracked, main) == (2, 0, 2, 0, 0)
    assert numbers(tracked, store) == (10, 0, 10, 0, 0)
    assert [level for level, _ in messages_of(response)] == ["error", "error"]
    texts = " ".join(text for _, text in messages_of(response))
    assert "only 2 available" in texts and "two different locations" in texts


def test_an_action_needs_a_reason(staff_client, tracked, main):
    # given
    level = receive(tracked, main, 10)

    # when
    blank = apply_action(staff_client, LEVELS, "receive_stock", [level], quantity=5, reason="")
    spaces = apply_action(staff_client, LEVELS, "receive_stock", [level], quantity=5, reason="  ")

    # then
    for response in (blank, spaces):
        assert response.status_code == 200
        assert response.context["form"].errors["reason"]
    assert numbers(tracked, main) == (10, 0, 10, 0, 0)
    assert StockLedgerEntry.objects.count() == 1


def test_thresholds_action_sets_them_flags_low_stock_and_logs_who(staff_client, tracked, main):
    # given
    level = receive(tracked, main, 10)

    # when
    response = apply_action(
        staff_client,
        LEVELS,
        "set_thresholds",
        [level],
        reorder_point=12,
        safety_stock=4,
        reason="Season starts",
    )

    # then
    assert response.status_code == 302
    level.refresh_from_db()
    assert (level.reorder_point, level.safety_stock, level.is_low) == (12, 4, True)
    assert OutboxEvent.objects.filter(event_type="stock.low").count() == 1
    entry = LogEntry.objects.get(object_id=str(level.pk))
    assert entry.user == staff_client.user
    assert entry.get_change_message() == (
        "Reorder point 0 → 12, safety stock 0 → 4. Reason: Season starts"
    )


# --- Auditors ----------------------------------------------------------------------------


def test_auditors_see_stock_but_are_offered_no_actions(auditor_client, tracked, main):
    # given
    level = receive(tracked, main, 10)

    # when
    listing = auditor_client.get(LEVELS)
    change = auditor_client.get(reverse("admin:inventory_stocklevel_change", args=[level.pk]))
    timeline = auditor_client.get(reverse("admin:inventory_stocklevel_timeline", args=[level.pk]))
    totals = auditor_client.get(reverse("admin:inventory_stocklevel_totals"))

    # then
    assert [r.status_code for r in (listing, change, timeline, totals)] == [200] * 4
    assert 'name="action"' not in listing.content.decode()
    assert 'name="on_hand"' not in change.content.decode()


@pytest.mark.parametrize(
    ("url", "action"),
    [
        (LEVELS, "receive_stock"),
        (LEVELS, "set_thresholds"),
        (RESERVATIONS, "cancel_reservations"),
        (TRANSFERS, "receive_transfers"),
    ],
)
def test_auditors_get_403_when_posting_an_action(auditor_client, tracked, main, url, action):
    # given
    level = receive(tracked, main, 10)

    # when
    opened = open_action(auditor_client, url, action, [level])
    applied = apply_action(auditor_client, url, action, [level], quantity=5, reason="sneaky")

    # then
    assert (opened.status_code, applied.status_code) == (403, 403)
    assert numbers(tracked, main) == (10, 0, 10, 0, 0)


def test_a_staff_user_without_a_role_cannot_see_a_timeline(client, tracked, main):
    # given
    level = receive(tracked, main, 10)
    client.force_login(UserFactory(is_staff=True))

    # when
    response = client.get(reverse("admin:inventory_stocklevel_timeline", args=[level.pk]))

    # then
    assert response.status_code == 403


# --- Totals per product -----------------------------------------------------------------


def test_totals_sum_each_product_over_its_locations_in_one_query(
    staff_client, tracked, other, main, store
):
    # given
    receive(tracked, main, 10)
    receive(tracked, store, 5)
    receive(other, main, 7)
    reservation_create(sku=tracked.sku, quantity=12, audit=SETUP)
    transfer_create(
        sku=other.sku, from_location="MAIN", to_location="STORE", quantity=2, audit=SETUP
    )

    # when
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(reverse("admin:inventory_stocklevel_totals"))

    # then
    assert response.status_code == 200
    rows = [
        (
            row["product__sku"],
            row["locations"],
            row["total_on_hand"],
            row["total_reserved"],
            row["total_available"],
            row["total_in_transit"],
        )
        for row in response.context["totals"]
    ]
    assert rows == [("TRK-1", 2, 15, 12, 3, 0), ("TRK-2", 2, 5, 0, 5, 2)]
    assert sum("SUM(" in q["sql"] for q in queries.captured_queries) == 1
    assert "TRK-1" in response.content.decode()


def test_totals_can_be_limited_to_one_location(staff_client, tracked, main, store):
    # given
    receive(tracked, main, 10)
    receive(tracked, store, 5)

    # when
    response = staff_client.get(reverse("admin:inventory_stocklevel_totals") + "?location=STORE")

    # then
    (row,) = response.context["totals"]
    assert (row["locations"], row["total_on_hand"]) == (1, 5)


@pytest.mark.parametrize("page", ["9" * 30, "²", "-3", "x"])
def test_totals_page_number_out_of_reach_shows_a_page_instead_of_failing(
    staff_client, tracked, main, page
):
    # given
    receive(tracked, main, 10)

    # when
    response = staff_client.get(reverse("admin:inventory_stocklevel_totals"), {"p": page})

    # then: a bad number is page 1; a huge one is an empty page, not a bigint overflow
    assert response.status_code == 200
    expected = [] if page.isdecimal() else ["TRK-1"]
    assert [row["product__sku"] for row in response.context["totals"]] == expected


def test_stock_list_links_to_the_totals(staff_client):
    response = staff_client.get(LEVELS)
    assert reverse("admin:inventory_stocklevel_totals") in response.content.decode()


# --- Timeline ---------------------------------------------------------------------------


def test_timeline_lists_every_movement_oldest_first_with_a_chart(
    auditor_client, tracked, main, store
):
    # given
    receive(tracked, main, 10)
    reservation = reservation_create(sku=tracked.sku, quantity=4, audit=SETUP)
    transfer = transfer_create(
        sku=tracked.sku, from_location="MAIN", to_location="STORE", quantity=3, audit=SETUP
    )
    level = StockLevel.objects.get(product=tracked, location=main)

    # when
    response = auditor_client.get(reverse("admin:inventory_stocklevel_timeline", args=[level.pk]))

    # then
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [(r.entry.version, r.entry.movement, str(r.on_hand)) for r in rows] == [
        (1, "receive", "+10"),
        (2, "reserve", "0"),
        (3, "transfer_out", "-3"),
    ]
    content = response.content.decode()
    assert '<figure class="stock-chart">' in content
    assert '<polyline class="step on-hand"' in content
    assert '<polyline class="step reserved"' in content
    assert 'class="number delta-plus">+10<' in content
    assert 'class="number delta-minus">-3<' in content
    assert reverse("admin:inventory_reservation_change", args=[reservation.pk]) in content
    assert reverse("admin:inventory_transfer_change", args=[transfer.pk]) in content
    assert (
        '<span class="status-badge status-info" title="Transfer out (shipped)">transfer out</span>'
    ) in content
    # the row's every field is one link away; the time is short, the whole in its title
    last = rows[-1].entry
    assert reverse("admin:history_stockledgerentry_change", args=[last.pk]) in content
    when = last.occurred_at
    assert f'title="{when:%Y-%m-%d %H:%M:%S} UTC">{when:%Y-%m-%d %H:%M}</span>' in content


def test_timeline_of_a_level_without_movements_says_so(staff_client, tracked, main):
    # given
    level = StockLevel.objects.create(product=tracked, location=main)

    # when
    response = staff_client.get(reverse("admin:inventory_stocklevel_timeline", args=[level.pk]))

    # then
    assert response.status_code == 200
    assert "No stock has moved here yet." in response.content.decode()
    assert '<figure class="stock-chart">' not in response.content.decode()


def test_timeline_links_an_order_reservation_to_the_order_timeline(staff_client, tracked, main):
    # given
    level = receive(tracked, main, 10)
    order = order_create(customer_id=None, reference="PO-1", lines={tracked.sku: 2}, audit=SETUP)

    # when
    response = staff_client.get(reverse("admin:inventory_stocklevel_timeline", args=[level.pk]))

    # then
    assert reverse("admin:orders_order_timeline", args=[order.pk]) in response.content.decode()


def test_stock_chart_draws_on_hand_and_reserved_as_steps_on_one_scale():
    # given
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def row(version, minutes, on_hand, reserved):
        return SimpleNamespace(
            version=version,
            occurred_at=start + timedelta(minutes=minutes),
            on_hand_after=on_hand,
            reserved_after=reserved,
            delta_on_hand=0,
            delta_reserved=0,
            delta_in_transit=0,
            delta_backorder=0,
            in_transit_after=0,
            backorder_after=0,
        )

    rows = [row(2, 10, 10, 5), row(1, 0, 20, 0)]

    # when
    chart = stock_chart(rows, width=156, height=120)

    # then: x runs from 56 to 144, y from 110 (0) to 10 (20)
    on_hand, reserved = chart.series
    assert chart.max_quantity == 20
    assert on_hand.polyline == "56.0,10.0 144.0,10.0 144.0,60.0"
    assert reserved.polyline == "56.0,110.0 144.0,110.0 144.0,85.0"
    assert (on_hand.current, reserved.current) == (10, 5)
    assert stock_chart([]) is None
    assert [str(r.on_hand) for r in timeline_rows(rows)] == ["0", "0"]


def test_every_movement_has_a_short_coloured_badge_with_its_full_name_in_the_title():
    # given
    rows = [
        SimpleNamespace(
            movement=movement,
            delta_on_hand=0,
            delta_reserved=0,
            delta_in_transit=0,
            delta_backorder=0,
            on_hand_after=0,
            reserved_after=0,
        )
        for movement in StockMovementType
    ]

    # when
    badges = [row.movement_badge for row in timeline_rows(rows)]

    # then
    assert set(MOVEMENT_BADGES) == set(StockMovementType)
    for movement, html in zip(StockMovementType, badges, strict=True):
        label, tone = MOVEMENT_BADGES[movement]
        assert html == (
            f'<span class="status-badge status-{tone}" title="{movement.label}">{label}</span>'
        )


def test_in_transit_and_backorder_are_shown_under_the_movement_only_when_they_change():
    # given
    def row(in_transit: int, backorder: int) -> SimpleNamespace:
        return SimpleNamespace(
            delta_on_hand=0,
            delta_reserved=0,
            delta_in_transit=in_transit,
            delta_backorder=backorder,
            on_hand_after=5,
            reserved_after=0,
            in_transit_after=8,
            backorder_after=3,
        )

    # when
    quiet, shipped, backordered = timeline_rows([row(0, 0), row(8, 0), row(0, -2)])

    # then
    assert quiet.side_deltas == []
    assert [(name, str(delta), after) for name, delta, after in shipped.side_deltas] == [
        ("in transit", "+8", 8)
    ]
    assert [(name, str(delta), after) for name, delta, after in backordered.side_deltas] == [
        ("backorder", "-2", 3)
    ]


# --- Reservations -----------------------------------------------------------------------


def test_reservation_list_and_change_page_are_read_only_with_allocations(
    auditor_client, tracked, main, store
):
    # given
    receive(tracked, main, 3)
    receive(tracked, store, 5)
    reservation = reservation_create(sku=tracked.sku, quantity=6, reference="HOLD-7", audit=SETUP)

    # when
    listing = auditor_client.get(RESERVATIONS + "?status=active")
    change = auditor_client.get(
        reverse("admin:inventory_reservation_change", args=[reservation.pk])
    )

    # then
    assert [r.pk for r in listing.context["cl"].result_list] == [reservation.pk]
    assert "HOLD-7" in listing.content.decode()
    allocations = change.context["inline_admin_formsets"][0]
    assert [f.original.location.code for f in allocations] == ["MAIN", "STORE"]
    content = change.content.decode()
    assert 'name="quantity"' not in content and 'name="status"' not in content


def test_reservation_actions_confirm_and_cancel(staff_client, tracked, main):
    # given
    receive(tracked, main, 10)
    kept = reservation_create(sku=tracked.sku, quantity=3, audit=SETUP)
    dropped = reservation_create(sku=tracked.sku, quantity=2, audit=SETUP)

    # when
    confirmed = apply_action(
        staff_client, RESERVATIONS, "confirm_reservations", [kept], reason="Picked up"
    )
    cancelled = apply_action(
        staff_client, RESERVATIONS, "cancel_reservations", [dropped], reason="Changed mind"
    )

    # then
    assert (confirmed.status_code, cancelled.status_code) == (302, 302)
    kept.refresh_from_db()
    dropped.refresh_from_db()
    assert (kept.status, dropped.status) == ("confirmed", "cancelled")
    assert numbers(tracked, main) == (7, 0, 7, 0, 0)
    assert list(
        StockLedgerEntry.objects.filter(source="admin")
        .order_by("id")
        .values_list("movement", "reason")
    ) == [("consume", "Picked up"), ("release", "Changed mind")]
    assert messages_of(confirmed) == [("success", f"Confirmed 1 reservation(s): #{kept.pk}.")]


def test_reservation_actions_refuse_inactive_and_order_reservations(staff_client, tracked, main):
    # given
    receive(tracked, main, 10)
    done = reservation_create(sku=tracked.sku, quantity=1, audit=SETUP)
    apply_action(staff_client, RESERVATIONS, "cancel_reservations", [done], reason="first")
    order = order_create(customer_id=None, reference="PO-2", lines={tracked.sku: 4}, audit=SETUP)
    for_order = Reservation.objects.get(order=order)

    # when
    response = apply_action(
        staff_client, RESERVATIONS, "cancel_reservations", [done, for_order], reason="again"
    )

    # then (after the success message of the first cancel)
    assert [level for level, _ in messages_of(response)][-2:] == ["error", "error"]
    texts = [text for _, text in messages_of(response)][-2:]
    assert "already cancelled" in texts[0]
    assert f"holds stock for order {order.pk}; fulfil or cancel the order instead" in texts[1]
    for_order.refresh_from_db()
    assert for_order.status == ReservationStatus.ACTIVE
    assert numbers(tracked, main) == (10, 4, 6, 0, 0)


# --- Transfers --------------------------------------------------------------------------


def test_transfer_actions_receive_and_cancel(staff_client, tracked, main, store):
    # given
    receive(tracked, main, 10)
    arriving = transfer_create(
        sku=tracked.sku, from_location="MAIN", to_location="STORE", quantity=4, audit=SETUP
    )
    returning = transfer_create(
        sku=tracked.sku, from_location="MAIN", to_location="STORE", quantity=1, audit=SETUP
    )

    # when
    received = apply_action(
        staff_client, TRANSFERS, "receive_transfers", [arriving], reason="Arrived"
    )
    cancelled = apply_action(
        staff_client, TRANSFERS, "cancel_transfers", [returning], reason="Truck broke down"
    )
    again = apply_action(staff_client, TRANSFERS, "receive_transfers", [arriving], reason="x")

    # then
    assert (received.status_code, cancelled.status_code) == (302, 302)
    arriving.refresh_from_db()
    returning.refresh_from_db()
    assert (arriving.status, returning.status) == (
        TransferStatus.RECEIVED,
        TransferStatus.CANCELLED,
    )
    assert numbers(tracked, main) == (6, 0, 6, 0, 0)
    assert numbers(tracked, store) == (4, 0, 4, 0, 0)
    assert messages_of(again)[-1:] == [
        (
            "error",
            f"Transfer #{arriving.pk} (4 of TRK-1, MAIN → STORE, received): nothing was "
            f"written. Transfer {arriving.pk} is already received.",
        )
    ]


def test_transfer_list_filters_by_status(auditor_client, tracked, main, store):
    # given
    receive(tracked, main, 10)
    transfer = transfer_create(
        sku=tracked.sku, from_location="MAIN", to_location="STORE", quantity=4, audit=SETUP
    )

    # when
    moving = auditor_client.get(TRANSFERS + "?status__exact=in_transit")
    done = auditor_client.get(TRANSFERS + "?status__exact=received")

    # then
    assert [t.pk for t in moving.context["cl"].result_list] == [transfer.pk]
    assert list(done.context["cl"].result_list) == []
    change = auditor_client.get(reverse("admin:inventory_transfer_change", args=[transfer.pk]))
    assert change.status_code == 200 and 'name="quantity"' not in change.content.decode()


# --- Products ---------------------------------------------------------------------------


def test_adding_a_product_keeps_allow_backorder(staff_client):
    # when
    staff_client.post(
        reverse("admin:inventory_product_add"),
        {"sku": "BO-1", "name": "Backorderable", "track_inventory": "on", "allow_backorder": "on"},
    )

    # then
    product = Product.objects.get(sku="BO-1")
    assert (product.track_inventory, product.allow_backorder) == (True, True)


# --- Orders: fulfil action --------------------------------------------------------------


def test_fulfil_orders_action_consumes_stock_and_reports_failures(staff_client, tracked, main):
    # given
    receive(tracked, main, 10)
    shipped = order_create(customer_id=None, reference="A", lines={tracked.sku: 3}, audit=SETUP)
    gone = order_create(customer_id=None, reference="B", lines={tracked.sku: 2}, audit=SETUP)
    order_cancel(order_id=gone.pk, audit=SETUP)

    # when
    response = staff_client.post(
        ORDERS,
        {
            "action": "fulfil_orders",
            "_selected_action": [shipped.pk, gone.pk],
            "index": "0",
            "reason_code": "customer_request",
        },
    )

    # then
    assert response.status_code == 302
    shipped.refresh_from_db()
    assert shipped.status == OrderStatus.FULFILLED
    assert Order.objects.get(pk=gone.pk).status == OrderStatus.CANCELLED
    assert numbers(tracked, main) == (7, 0, 7, 0, 0)
    assert ledger(tracked, main)[-1][:3] == ("consume", -3, 7)
    assert messages_of(response) == [
        ("success", f"Fulfilled 1 order(s): #{shipped.pk}."),
        (
            "error",
            f"Could not fulfil 1 order(s): #{gone.pk}: Order {gone.pk} is cancelled and "
            "cannot be changed.",
        ),
    ]


def test_auditors_are_not_offered_the_fulfil_action(auditor_client, tracked, main):
    # given
    receive(tracked, main, 10)
    order = order_create(customer_id=None, reference="A", lines={tracked.sku: 3}, audit=SETUP)

    # when
    listing = auditor_client.get(ORDERS)
    posted = auditor_client.post(
        ORDERS, {"action": "fulfil_orders", "_selected_action": [order.pk], "index": "0"}
    )

    # then
    assert "fulfil_orders" not in listing.content.decode()
    order.refresh_from_db()
    assert order.status == OrderStatus.OPEN
    assert posted.status_code in (200, 302)
