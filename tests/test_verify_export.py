"""An auditor's round trip: export a history and its proof over the API, then check them
with tools/verify_export.py on "their own machine": a separate Python that has only the
standard library (-I -S: no site-packages, so no Django) and never talks to the server."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from history.audit import Audit
from history.models import AccessLogEntry, LedgerSeal, OrderLedgerEntry, Source
from history.seals import ledger_seal
from inventory.services import location_create, stock_adjust, stock_receive
from orders.services import order_adjust
from tests import database

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
AUDIT = Audit(
    actor="clerk", source=Source.SYSTEM, reason="=cmd|' /C calc'!A0", reason_code="correction"
)


def _verifier(*args) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(ROOT / "tools" / "verify_export.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def exported(tmp_path, make_order, product, api_client_for):
    """An order with a sealed history and one later change, exported with its proof, and
    the public key, as an auditor downloads them."""
    order = make_order(lines={product.sku: 10})
    order_adjust(order_id=order.pk, deltas={product.sku: 5}, audit=AUDIT)
    order_adjust(order_id=order.pk, deltas={product.sku: -3}, audit=AUDIT)
    ledger_seal()
    order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=AUDIT)
    ledger_seal()
    order_adjust(order_id=order.pk, deltas={product.sku: 2}, audit=AUDIT)
    auditor = api_client_for("auditor")
    files = {}
    for name, url in (
        ("csv", f"/api/v1/orders/{order.pk}/history/?format=csv"),
        ("proof", f"/api/v1/orders/{order.pk}/proof/"),
        ("key", "/api/v1/seals/key/"),
    ):
        response = auditor.get(url)
        assert response.status_code == 200, response.content
        body = b"".join(response.streaming_content) if response.streaming else response.content
        files[name] = tmp_path / name
        files[name].write_bytes(body)
    return order, files


def test_a_fresh_export_verifies_against_its_seal_on_a_machine_with_only_python(exported):
    # given
    order, files = exported

    # when
    code, out = _verifier(
        "--csv", files["csv"], "--proof", files["proof"], "--public-key", files["key"]
    )

    # then: the four sealed rows are proven, the fifth is chained but not sealed yet
    assert code == 0, out
    sealed = OrderLedgerEntry.objects.filter(order=order).order_by("id")[3]
    assert (
        f"order {order.pk}: its rows up to row {sealed.pk} (version 4) are covered by seal 2" in out
    )
    assert "1 later row(s) chain on from it but are not sealed yet" in out
    assert "VERIFIED: 5 row(s) of 1 chain(s)" in out


def test_the_proof_request_is_in_the_access_log(exported):
    order, _ = exported
    assert AccessLogEntry.objects.filter(action="proof_order", target=f"order {order.pk}").exists()


def _edit_csv(path: Path, edit) -> None:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    header, body = rows[0], rows[1:]
    body = edit(header, body)
    out = io.StringIO()
    csv.writer(out).writerows([header, *body])
    path.write_text(out.getvalue())


def test_an_edited_cell_in_the_export_is_named(exported):
    # given: the auditor's copy altered: a delta of row 2
    order, files = exported

    def edit(header, body):
        body[1][header.index("quantity_after")] = "16"
        body[1][header.index("delta")] = "6"
        return body

    _edit_csv(files["csv"], edit)

    # when
    code, out = _verifier(
        "--csv", files["csv"], "--proof", files["proof"], "--public-key", files["key"]
    )

    # then
    assert code == 1
    assert f"BROKEN: order {order.pk}: row" in out
    assert "was edited" in out


def test_a_row_left_out_of_the_export_is_named(exported):
    # given
    _, files = exported
    _edit_csv(files["csv"], lambda header, body: [body[0], *body[2:]])

    # when
    code, out = _verifier(
        "--csv", files["csv"], "--proof", files["proof"], "--public-key", files["key"]
    )

    # then
    assert code == 1
    assert "a row is missing before row" in out


def test_a_proof_with_a_forged_signature_or_another_key_fails(exported, tmp_path):
    # given
    _, files = exported
    proof = json.loads(files["proof"].read_text())
    signature = proof["seal"]["signature"]
    proof["seal"]["signature"] = ("0" if signature[0] != "0" else "1") + signature[1:]
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(proof))

    # when
    code, out = _verifier("--csv", files["csv"], "--proof", forged, "--public-key", files["key"])
    other_code, other = _verifier(
        "--csv", files["csv"], "--proof", files["proof"], "--public-key", "11" * 32
    )

    # then
    assert code == 1 and "the signature does not verify" in out
    assert other_code == 1 and "signed by another key" in other


def test_an_export_taken_after_a_superuser_rewrote_a_row_does_not_verify(exported, api_client_for):
    # given: a sealed row's reason rewritten in the database, triggers off, then exported
    order, files = exported
    row = OrderLedgerEntry.objects.filter(order=order).order_by("id")[1]
    table = OrderLedgerEntry._meta.db_table
    with psycopg.connect(
        **database.owner_dsn(), dbname=connection.settings_dict["NAME"], autocommit=True
    ) as owner:
        owner.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        owner.execute(f"UPDATE {table} SET reason = 'approved' WHERE id = %s", [row.pk])
        owner.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    response = api_client_for("auditor").get(f"/api/v1/orders/{order.pk}/history/?format=csv")
    files["csv"].write_bytes(b"".join(response.streaming_content))

    # when
    code, out = _verifier(
        "--csv", files["csv"], "--proof", files["proof"], "--public-key", files["key"]
    )

    # then
    assert code == 1
    assert f"row {row.pk} (version {row.version}) was edited" in out


def test_a_stock_history_export_verifies_with_its_proof(tmp_path, product, api_client_for):
    # given
    location_create(code="WH-V", name="Verify")
    stock_receive(sku=product.sku, location="WH-V", quantity=40, audit=AUDIT)
    stock_adjust(sku=product.sku, location="WH-V", delta=-3, audit=AUDIT)
    assert LedgerSeal.objects.count() == 0
    ledger_seal()
    auditor = api_client_for("auditor")
    export = auditor.get(f"/api/v1/stock/history/?sku={product.sku}&format=csv")
    proof = auditor.get(f"/api/v1/stock/{product.sku}/proof/?location=WH-V")
    assert proof.status_code == 200, proof.content
    (tmp_path / "stock.csv").write_bytes(b"".join(export.streaming_content))
    (tmp_path / "proof.json").write_bytes(proof.content)
    (tmp_path / "key.json").write_bytes(auditor.get("/api/v1/seals/key/").content)

    # when
    code, out = _verifier(
        "--csv", tmp_path / "stock.csv", "--proof", tmp_path / "proof.json",
        "--public-key", tmp_path / "key.json",
    )  # fmt: skip

    # then
    assert code == 0, out
    assert f"stock {product.sku}@WH-V: its rows up to row" in out
    assert "(version 2) are covered by seal 1" in out


def test_bad_input_gets_a_clear_message_and_status_2(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    code, out = _verifier("--csv", tmp_path / "x.csv", "--public-key", "abcd")
    assert code == 2
    assert "error:" in out


def test_the_audit_kit_is_one_file_that_verifies_the_same_export(exported, tmp_path):
    # given: the kit built as `make audit-kit` builds it, copied where no checkout is
    _, files = exported
    build = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_audit_kit.py"), str(tmp_path / "kit.pyz")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert build.returncode == 0, build.stderr

    # when
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(tmp_path / "kit.pyz"), "--csv", str(files["csv"]),
         "--proof", str(files["proof"]), "--public-key", str(files["key"])],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip

    # then
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VERIFIED: 5 row(s) of 1 chain(s)" in done.stdout
