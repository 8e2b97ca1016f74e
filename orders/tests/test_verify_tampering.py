"""verify_ledger against a superuser's tampering: each way of rewriting the ledger or its
seals (triggers off, change, triggers on) is found and named, on real PostgreSQL."""

import hashlib
import io
import struct
from datetime import UTC

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from history.audit import Audit
from history.chain import GENESIS, order_entry_hash
from history.models import LedgerSeal, OrderLedgerEntry, Source, StockLedgerEntry
from history.seals import ledger_seal
from inventory.models import StockLevel
from inventory.services import location_create, stock_adjust, stock_receive
from orders.models import Order
from orders.services import order_adjust, order_set_quantities
from tests import database

pytestmark = pytest.mark.django_db(transaction=True)

AUDIT = Audit(actor="clerk", source=Source.SYSTEM, reason="test", reason_code="correction")
ORDERS = OrderLedgerEntry._meta.db_table
STOCK = StockLedgerEntry._meta.db_table


def _verify() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_ledger", "--skip-snapshots", stdout=out)
    except SystemExit as exit_:
        return exit_.code, out.getvalue()
    return 0, out.getvalue()


def _as_superuser(table: str, sql: str, params=()) -> None:
    """What someone who can switch the guards off does: triggers off, change, triggers on."""
    with psycopg.connect(
        **database.owner_dsn(), dbname=connection.settings_dict["NAME"], autocommit=True
    ) as owner:
        owner.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        try:
            owner.execute(sql, params)
        finally:
            owner.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


@pytest.fixture
def ledger(make_order, product, other_product):
    """An order with four versions and a stock level with three, all sealed, then one more
    change of each that no seal covers yet."""
    order = make_order(lines={product.sku: 10, other_product.sku: 5})
    order_set_quantities(order_id=order.pk, quantities={product.sku: 12}, audit=AUDIT)
    order_adjust(order_id=order.pk, deltas={product.sku: -2, other_product.sku: 3}, audit=AUDIT)
    location_create(code="WH-T", name="Tamper")
    stock_receive(sku=other_product.sku, location="WH-T", quantity=50, audit=AUDIT)
    stock_adjust(sku=other_product.sku, location="WH-T", delta=-4, audit=AUDIT)
    assert ledger_seal() is not None
    order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=AUDIT)
    stock_adjust(sku=other_product.sku, location="WH-T", delta=1, audit=AUDIT)
    return order


def _rows(order) -> list[OrderLedgerEntry]:
    return list(OrderLedgerEntry.objects.filter(order=order).order_by("id"))


def test_an_untouched_ledger_verifies(ledger):
    # when
    code, out = _verify()

    # then
    assert code == 0, out
    assert "OK: every hash chain is intact, and all 1 seal(s) verify" in out


def test_every_row_hashes_as_the_readme_documents(ledger):
    # given: the encoding, written out again by hand from its description
    row = _rows(ledger)[1]

    def lp(text: str) -> bytes:
        return struct.pack(">I", len(text.encode())) + text.encode()

    occurred = row.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = [
        str(row.event_id), str(row.order_id), str(row.version), row.event_type, row.sku,
        str(row.delta), str(row.quantity_before), str(row.quantity_after), row.actor,
        row.source, row.reason_code, row.reason, occurred, row.correlation_id,
        row.idempotency_key,
    ]  # fmt: skip

    # when
    expected = hashlib.sha256(
        lp("ordertrack/order-ledger/v1") + bytes(row.prev_hash) + b"".join(map(lp, fields))
    ).digest()

    # then: the stored hash is that, and the row links to the one before it
    assert bytes(row.hash) == expected
    assert bytes(row.prev_hash) == bytes(_rows(ledger)[0].hash)
    assert bytes(_rows(ledger)[0].prev_hash) == GENESIS
    assert bytes(Order.objects.get(pk=ledger.pk).ledger_head) == bytes(_rows(ledger)[-1].hash)


def test_an_edited_row_is_named(ledger):
    # given: a sealed row's reason rewritten
    row = _rows(ledger)[2]
    _as_superuser(ORDERS, f"UPDATE {ORDERS} SET reason = 'nothing to see' WHERE id = %s", [row.pk])

    # when
    code, out = _verify()

    # then
    assert code == 1
    assert f"order {ledger.pk}: chain: row {row.pk} (version {row.version}) was edited" in out
    # the seal signed the row's stored hash, which its content no longer matches
    assert "seal 1:" not in out


def test_a_deleted_row_is_named_and_breaks_its_seal(ledger):
    # given
    rows = _rows(ledger)
    _as_superuser(ORDERS, f"DELETE FROM {ORDERS} WHERE id = %s", [rows[2].pk])

    # when
    code, out = _verify()

    # then
    assert code == 1
    assert f"order {ledger.pk}: chain: a row is missing before row {rows[3].pk}" in out
    assert "seal 1: sealed 7 rows, the ledgers now hold 6 of them: rows were deleted" in out


def test_reordered_rows_are_named(ledger):
    # given: two rows swap places (their ids)
    rows = _rows(ledger)
    first, second = rows[1].pk, rows[3].pk
    for old, new in ((first, -1), (second, first), (-1, second)):
        _as_superuser(ORDERS, f"UPDATE {ORDERS} SET id = %s WHERE id = %s", [new, old])

    # when
    code, out = _verify()

    # then
    assert code == 1
    assert "are out of order" in out
    assert "seal 1: the rows it covers no longer make its root" in out


def test_an_inserted_row_is_named_even_with_a_valid_hash(ledger):
    # given: a forged row that links to a real one, with a hash computed by the book
    rows = _rows(ledger)
    real = rows[2]
    forged = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "order_id": real.order_id,
        "version": real.version,
        "event_type": real.event_type,
        "sku": "FORGED",
        "delta": 0,
        "quantity_before": 0,
        "quantity_after": 0,
        "actor": "mallory",
        "source": "api",
        "reason_code": "correction",
        "reason": "",
        "occurred_at": real.occurred_at,
        "correlation_id": "",
        "idempotency_key": "",
    }
    digest = order_entry_hash(bytes(real.prev_hash), forged)
    _as_superuser(
        ORDERS,
        f"INSERT INTO {ORDERS} (event_id, order_id, product_id, sku, version, event_type, delta, "
        "quantity_before, quantity_after, actor, source, reason_code, reason, occurred_at, "
        "correlation_id, idempotency_key, prev_hash, hash) SELECT %s, order_id, product_id, "
        "'FORGED', version + 100, event_type, 0, 0, 0, 'mallory', 'api', 'correction', '', "
        f"occurred_at, '', '', prev_hash, %s FROM {ORDERS} WHERE id = %s RETURNING id",
        [forged["event_id"], digest, real.pk],
    )

    # when
    code, out = _verify()

    # then
    assert code == 1
    assert "all link to the same row: all but one were inserted" in out


def test_a_tail_cut_off_after_a_seal_is_found_even_when_the_head_is_moved_back(ledger):
    # given: the last sealed stock row deleted, and the level's head set to the row before
    level = StockLevel.objects.get(location__code="WH-T")
    rows = list(
        StockLedgerEntry.objects.filter(product=level.product, location=level.location).order_by(
            "id"
        )
    )
    sealed_last, before = rows[-2], rows[-3]
    _as_superuser(STOCK, f"DELETE FROM {STOCK} WHERE id >= %s", [sealed_last.pk])
    code, out = _verify()
    assert code == 1
    assert "rows after it are missing (a tail cut off)" in out

    # when: the tamperer also moves the head back
    _as_superuser(
        StockLevel._meta.db_table,
        f"UPDATE {StockLevel._meta.db_table} SET ledger_head = %s WHERE id = %s",
        [bytes(before.hash), level.pk],
    )
    code, out = _verify()

    # then: the chain looks whole, the seal does not
    assert code == 1
    assert "chain:" not in out
    assert "seal 1: sealed 7 rows, the ledgers now hold 6 of them: rows were deleted" in out


def test_a_row_edited_and_its_chain_rehashed_is_caught_by_the_seal(ledger):
    # given: a row edited, and every hash after it recomputed, heads included
    rows = _rows(ledger)
    _as_superuser(ORDERS, f"UPDATE {ORDERS} SET actor = 'mallory' WHERE id = %s", [rows[1].pk])
    prev = bytes(rows[0].hash)
    for row in _rows(ledger)[1:]:
        fields = {name: getattr(row, name) for name in (
            "event_id", "order_id", "version", "event_type", "sku", "delta", "quantity_before",
            "quantity_after", "actor", "source", "reason_code", "reason", "occurred_at",
            "correlation_id", "idempotency_key")}  # fmt: skip
        digest = order_entry_hash(prev, fields)
        _as_superuser(
            ORDERS,
            f"UPDATE {ORDERS} SET prev_hash = %s, hash = %s WHERE id = %s",
            [prev, digest, row.pk],
        )
        prev = digest
    _as_superuser(
        "orders_order", "UPDATE orders_order SET ledger_head = %s WHERE id = %s", [prev, ledger.pk]
    )

    # when
    code, out = _verify()

    # then
    assert code == 1
    assert "chain:" not in out
    assert "seal 1: the rows it covers no longer make its root" in out


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            "signature = set_byte(signature, 0, get_byte(signature, 0) # 1)",
            "its signature does not verify",
        ),
        ("root = sha256(root)", "its fields no longer hash to its seal hash: the seal was edited"),
        ("previous_hash = sha256(previous_hash)", "its fields no longer hash to its seal hash"),
    ],
)
def test_a_tampered_seal_is_named(ledger, change, named):
    # given
    table = LedgerSeal._meta.db_table
    _as_superuser(table, f"UPDATE {table} SET {change} WHERE number = 1")

    # when
    code, out = _verify()

    # then
    assert code == 1
    assert f"seal 1: {named}" in out


def test_a_second_seal_covers_only_the_new_rows_and_chains_to_the_first(ledger):
    # when
    second = ledger_seal()

    # then
    first = LedgerSeal.objects.get(number=1)
    assert (second.number, second.batch_size, second.tree_size) == (2, 2, 9)
    assert bytes(second.previous_hash) == bytes(first.seal_hash)
    assert ledger_seal() is None  # nothing new
    code, out = _verify()
    assert code == 0, out
