"""Replaying the stock ledger rebuilds every stock level exactly, and verify_ledger reports
any level, ledger chain or sku total that disagrees."""

import contextlib
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import DomainError
from history.audit import Audit
from history.models import Source, StockLedgerEntry, StockMovementType
from history.selectors import stock_replay
from inventory.models import Location, Product, StockLevel
from inventory.selectors import StockDrift, stock_drift
from inventory.services import (
    location_create,
    reservation_cancel,
    reservation_confirm,
    reservation_create,
    reservations_expire,
    stock_adjust,
    stock_count,
    stock_issue,
    stock_receive,
    transfer_cancel,
    transfer_create,
    transfer_receive,
)
from tests.audits import coded
from tests.factories import ProductFactory

QUANTITIES = ("on_hand", "reserved", "in_transit", "backorder", "version")


def _levels() -> dict[tuple[int, int], tuple[int, ...]]:
    return {
        (level.product_id, level.location_id): tuple(getattr(level, q) for q in QUANTITIES)
        for level in StockLevel.objects.all()
    }


def _replayed() -> dict[tuple[int, int], tuple[int, ...]]:
    replay = stock_replay(StockLedgerEntry.objects.order_by("id"))
    assert [p for state in replay.values() for p in state.problems] == []
    return {key: tuple(getattr(state, q) for q in QUANTITIES) for key, state in replay.items()}


def _every_movement_kind(audit: Audit) -> None:
    """Receive, issue, adjust, count; a transfer received and one cancelled; reservations
    confirmed, cancelled and expired; backorders by issue and by reservation."""
    location_create(code="MAIN", name="Main", priority=10)
    location_create(code="STORE", name="Store", priority=20)
    ProductFactory(sku="TRK-1", track_inventory=True)
    ProductFactory(sku="BO-1", track_inventory=True, allow_backorder=True)
    stock_receive(sku="TRK-1", location="MAIN", quantity=20, audit=audit)
    stock_issue(sku="TRK-1", location="MAIN", quantity=3, audit=audit)
    stock_adjust(sku="TRK-1", location="MAIN", delta=-2, audit=coded(audit))
    stock_count(sku="TRK-1", location="MAIN", counted=16, audit=coded(audit))
    shipped = transfer_create(
        sku="TRK-1", from_location="MAIN", to_location="STORE", quantity=4, audit=audit
    )
    transfer_receive(transfer_id=shipped.pk, audit=audit)
    returned = transfer_create(
        sku="TRK-1", from_location="MAIN", to_location="STORE", quantity=2, audit=audit
    )
    transfer_cancel(transfer_id=returned.pk, audit=audit)
    confirmed = reservation_create(sku="TRK-1", quantity=14, audit=audit)  # MAIN 12, STORE 2
    reservation_confirm(reservation_id=confirmed.pk, audit=audit)
    cancelled = reservation_create(sku="TRK-1", quantity=1, location="STORE", audit=audit)
    reservation_cancel(reservation_id=cancelled.pk, audit=audit)
    reservation_create(
        sku="TRK-1",
        quantity=2,
        location="STORE",
        expires_at=timezone.now() + timedelta(minutes=5),
        audit=audit,
    )
    assert reservations_expire(now=timezone.now() + timedelta(minutes=10)) == 1
    stock_receive(sku="BO-1", location="MAIN", quantity=2, audit=audit)
    stock_issue(sku="BO-1", location="MAIN", quantity=5, audit=audit)  # 3 backordered
    backordered = reservation_create(sku="BO-1", quantity=4, audit=audit)  # all backordered
    reservation_cancel(reservation_id=backordered.pk, audit=audit)


@pytest.mark.django_db
def test_replaying_every_movement_kind_rebuilds_the_levels_exactly(audit):
    # given
    _every_movement_kind(audit)

    # when
    replayed = _replayed()

    # then
    assert replayed == _levels()
    main, store = Location.objects.get(code="MAIN"), Location.objects.get(code="STORE")
    trk, bo = Product.objects.get(sku="TRK-1"), Product.objects.get(sku="BO-1")
    # MAIN: 20 -3 -2 +1 (count) -4 -2 +2 -12 = 0; STORE: +4 -2 = 2, nothing reserved
    assert replayed[(trk.pk, main.pk)] == (0, 0, 0, 0, 9)
    assert replayed[(trk.pk, store.pk)] == (2, 0, 0, 0, 10)
    assert replayed[(bo.pk, main.pk)] == (0, 0, 0, 3, 4)
    movements = set(StockLedgerEntry.objects.values_list("movement", flat=True))
    assert movements == set(StockMovementType.values)
    assert list(stock_drift(check_totals=False)) == []


def test_replay_reports_every_break_in_the_chain():
    # given: rows as a tampered export might contain them
    def row(version, movement, delta_on_hand, on_hand_after, **extra):
        fields = {"reserved_after": 0, "in_transit_after": 0, "backorder_after": 0} | extra
        return StockLedgerEntry(
            product_id=1,
            location_id=2,
            sku="X",
            location_code="MAIN",
            version=version,
            movement=movement,
            delta_on_hand=delta_on_hand,
            on_hand_after=on_hand_after,
            **fields,
        )

    rows = [
        row(1, "receive", 10, 10),
        row(2, "issue", -3, 6),  # 10 - 3 is 7
        row(4, "reserve", 0, 6, delta_reserved=2, reserved_after=3),  # v3 missing; 0 + 2 is 2
    ]

    # when
    replay = stock_replay(rows)

    # then
    state = replay[(1, 2)]
    assert (state.on_hand, state.reserved, state.version, state.movements) == (6, 3, 4, 3)
    assert state.place == "X@MAIN"
    assert state.problems == [
        "v2 issue: on_hand 10 -3 makes 7, the row says 6",
        "version jumps from 2 to 4",
        "v4 reserve: reserved 0 +2 makes 2, the row says 3",
    ]


def _verify() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_ledger", stdout=out)
    except SystemExit as exited:
        return exited.code, out.getvalue()
    return 0, out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_verify_ledger_passes_after_every_movement_kind(audit):
    # given
    _every_movement_kind(audit)

    # when
    code, report = _verify()

    # then
    assert code == 0, report
    assert "OK: every order matches its ledger" in report
    assert "OK: every stock level matches the stock ledger, and the sku totals match" in report


@pytest.mark.django_db(transaction=True)
def test_verify_ledger_names_a_tampered_stock_level_and_exits_1(audit):
    # given: someone edits a level behind the services' back
    _every_movement_kind(audit)
    assert _verify()[0] == 0
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE inventory_stocklevel SET on_hand = on_hand + 5 WHERE id = "
            "(SELECT l.id FROM inventory_stocklevel l JOIN inventory_product p "
            "ON p.id = l.product_id JOIN inventory_location c ON c.id = l.location_id "
            "WHERE p.sku = 'TRK-1' AND c.code = 'STORE')"
        )

    # when
    code, report = _verify()

    # then
    assert code == 1
    lines = report.splitlines()
    assert "stock TRK-1@STORE: on_hand is 7, the ledger says 2" in lines
    assert "stock totals TRK-1: on_hand is 2, the levels sum to 7" in lines
    assert "DRIFT: 2 stock problem(s) in 2 stock level(s) or sku total(s)" in lines
    assert "OK" not in report


@pytest.mark.django_db(transaction=True)
def test_verify_ledger_finds_drifted_totals_and_a_level_without_a_ledger(audit):
    # given
    _every_movement_kind(audit)
    _verify()
    ghost = ProductFactory(sku="GHOST", track_inventory=True)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE history_skustocktotals SET reserved = 4 WHERE sku = 'BO-1'")
        cursor.execute(
            "INSERT INTO inventory_stocklevel (product_id, location_id, on_hand, reserved, "
            "in_transit, backorder, reorder_point, safety_stock, is_low, version, updated_at) "
            "SELECT %s, id, 3, 0, 0, 0, 0, 0, false, 0, now() FROM inventory_location "
            "WHERE code = 'MAIN'",
            [ghost.pk],
        )

    # when
    code, report = _verify()

    # then
    assert code == 1
    lines = report.splitlines()
    assert "stock GHOST@MAIN: on_hand is 3, the ledger says 0" in lines
    assert "stock totals BO-1: reserved is 4, the levels sum to 0" in lines
    assert "stock totals GHOST: no totals, but the levels are not all zero" in lines


@pytest.mark.django_db
def test_stock_drift_reports_ledger_rows_without_a_level(audit):
    # given: a level that the ledger knows, deleted (the ledger itself cannot be edited)
    location_create(code="MAIN", name="Main")
    ProductFactory(sku="TRK-1", track_inventory=True)
    stock_receive(sku="TRK-1", location="MAIN", quantity=3, audit=audit)
    StockLevel.objects.all().delete()

    # when
    drifts = list(stock_drift(check_totals=False))

    # then
    assert drifts == [
        StockDrift("TRK-1@MAIN", "state", "no stock level, but the ledger has movements")
    ]


# --- Property: any sequence of commands replays to the levels ------------------------------

AUDIT = Audit(actor="prop", source=Source.SYSTEM, reason="property", reason_code="correction")
SKUS = ["PR-A", "PR-B"]  # PR-B allows backorders
PLACES = ["P-MAIN", "P-STORE"]

skus, places, amounts = st.sampled_from(SKUS), st.sampled_from(PLACES), st.integers(1, 15)
picks = st.integers(0, 50)
commands = st.one_of(
    st.tuples(st.just("receive"), skus, places, amounts),
    st.tuples(st.just("issue"), skus, places, amounts),
    st.tuples(st.just("adjust"), skus, places, st.integers(-10, 10).filter(bool)),
    st.tuples(st.just("count"), skus, places, st.integers(0, 30)),
    st.tuples(st.just("transfer"), skus, places, amounts),
    st.tuples(st.just("transfer_receive"), picks),
    st.tuples(st.just("transfer_cancel"), picks),
    st.tuples(st.just("reserve"), skus, st.one_of(st.none(), places), amounts),
    st.tuples(st.just("confirm"), picks),
    st.tuples(st.just("cancel"), picks),
    st.tuples(st.just("expire")),
)


def _run(command, transfers: list[int], reservations: list[int]) -> None:
    kind, *args = command
    if kind == "receive":
        stock_receive(sku=args[0], location=args[1], quantity=args[2], audit=AUDIT)
    elif kind == "issue":
        stock_issue(sku=args[0], location=args[1], quantity=args[2], audit=AUDIT)
    elif kind == "adjust":
        stock_adjust(sku=args[0], location=args[1], delta=args[2], audit=AUDIT)
    elif kind == "count":
        stock_count(sku=args[0], location=args[1], counted=args[2], audit=AUDIT)
    elif kind == "transfer":
        other = PLACES[1 - PLACES.index(args[1])]
        transfer = transfer_create(
            sku=args[0], from_location=args[1], to_location=other, quantity=args[2], audit=AUDIT
        )
        transfers.append(transfer.pk)
    elif kind in ("transfer_receive", "transfer_cancel") and transfers:
        finish = transfer_receive if kind == "transfer_receive" else transfer_cancel
        finish(transfer_id=transfers[args[0] % len(transfers)], audit=AUDIT)
    elif kind == "reserve":
        reservation = reservation_create(
            sku=args[0], location=args[1], quantity=args[2], audit=AUDIT
        )
        reservations.append(reservation.pk)
    elif kind in ("confirm", "cancel") and reservations:
        finish = reservation_confirm if kind == "confirm" else reservation_cancel
        finish(reservation_id=reservations[args[0] % len(reservations)], audit=AUDIT)
    elif kind == "expire":
        reservations_expire(now=timezone.now() + timedelta(days=365))


@pytest.mark.django_db
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(commands, min_size=1, max_size=20))
def test_any_sequence_of_stock_commands_replays_to_the_levels(steps):
    # given
    for code in PLACES:
        Location.objects.get_or_create(code=code, defaults={"name": code})
    for sku in SKUS:
        Product.objects.get_or_create(
            sku=sku, defaults={"name": sku, "allow_backorder": sku == "PR-B"}
        )
    transfers: list[int] = []
    reservations: list[int] = []

    # when
    for command in steps:
        # A refused command must leave no trace, which the replay checks.
        with contextlib.suppress(DomainError):
            _run(command, transfers, reservations)

    # then
    assert _replayed() == {k: v for k, v in _levels().items() if v != (0, 0, 0, 0, 0)}
    assert list(stock_drift(check_totals=False)) == []
