"""The ledger archive (history.archive): old months written to verified files, then dropped;
the database's own guard on the drop; restore; verify_ledger across archives; and a crash
at every step (a real SIGKILL) that a second run finishes."""

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from history.archive import STEPS
from history.audit import Audit
from history.models import (
    LedgerArchive,
    OrderLedgerEntry,
    Source,
    StockLedgerEntry,
)
from history.projector import projections_run
from history.seals import ledger_seal
from history.services import partitions_ensure
from inventory.models import StockLevel
from inventory.selectors import stock_chain_problems
from inventory.services import location_create, stock_adjust, stock_receive
from orders.management.commands.seed_demo import _clock
from orders.selectors import order_chain_problems
from orders.services import order_adjust, order_set_quantities
from tests import database
from tests.partitions import as_owner as as_owner_sql
from tests.partitions import month_start, partition, relation_exists
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db(transaction=True)

AUDIT = Audit(actor="clerk", source=Source.SYSTEM, reason="test", reason_code="correction")
LEDGERS = (OrderLedgerEntry._meta.db_table, StockLedgerEntry._meta.db_table)


def _yyyymm(offset: int) -> str:
    return f"{month_start(offset):%Y-%m}"


def _as_owner(*args, **kwargs) -> None:
    """ledger_archive and ledger_restore, run as the owner, as the README says to."""
    with database.acting_as_owner():
        call_command(*args, **kwargs)


def _verify(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_ledger", "--skip-snapshots", *args, stdout=out)
    except SystemExit as exit_:
        return exit_.code, out.getvalue()
    return 0, out.getvalue()


def _fingerprint() -> dict:
    """Every ledger row's id and hash, in the database or in an archive (for 'nothing is
    lost'): read from the database plus the archive files."""
    rows = {}
    for table in LEDGERS:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id, encode(hash, 'hex') FROM {table}")
            rows[table] = dict(cursor.fetchall())
    for archive in LedgerArchive.objects.filter(dropped_at__isnull=False, restored_at__isnull=True):
        table = LEDGERS[0] if archive.ledger == "order" else LEDGERS[1]
        with gzip.open(settings.LEDGER_ARCHIVE_DIR / archive.file_name, "rt") as file:
            lines = file.read().splitlines()
        header = lines[0].split(",")
        for line in lines[1:]:
            values = dict(zip(header, line.split(","), strict=False))
            rows[table][int(values["id"])] = values["hash"].removeprefix("\\x")
    return rows


@pytest.fixture
def archive_dir(settings, tmp_path):
    settings.LEDGER_ARCHIVE_DIR = tmp_path / "archive"
    return settings.LEDGER_ARCHIVE_DIR


@pytest.fixture
def history(archive_dir, make_order, product, other_product):
    """An order and a stock level with rows three months ago, two months ago and this
    month, sealed between the months and at the end, projected; four months ago an empty
    month."""
    partitions_ensure(months_ahead=3, since=month_start(-4))
    location_create(code="WH-A", name="Archive")
    with _clock(month_start(-3) + timedelta(days=2, hours=5)):
        order = make_order(lines={product.sku: 10, other_product.sku: 5})
        order_set_quantities(order_id=order.pk, quantities={product.sku: 12}, audit=AUDIT)
        stock_receive(sku=product.sku, location="WH-A", quantity=50, audit=AUDIT)
    ledger_seal()
    with _clock(month_start(-2) + timedelta(days=27, hours=23)):
        order_adjust(order_id=order.pk, deltas={other_product.sku: 3}, audit=AUDIT)
        stock_adjust(sku=product.sku, location="WH-A", delta=-4, audit=AUDIT)
    ledger_seal()
    order_adjust(order_id=order.pk, deltas={product.sku: -2}, audit=AUDIT)
    stock_receive(sku=product.sku, location="WH-A", quantity=7, audit=AUDIT)
    ledger_seal()
    projections_run()
    return order


# --- archiving --------------------------------------------------------------------------------


def test_old_months_are_archived_verified_and_dropped_and_verify_ledger_goes_on(history):
    # given
    before = _fingerprint()
    out = io.StringIO()

    # when
    _as_owner("ledger_archive", "--before", _yyyymm(-1), stdout=out)

    # then: both ledgers' three old months (one empty) are gone from the database, to files
    for table in LEDGERS:
        assert not any(relation_exists(partition(table, month)) for month in (-4, -3, -2))
        assert relation_exists(partition(table, -1)) and relation_exists(partition(table, 0))
    assert OrderLedgerEntry.objects.count() == 1
    assert StockLedgerEntry.objects.count() == 1
    assert LedgerArchive.objects.filter(dropped_at__isnull=False).count() == 6
    assert LedgerArchive.objects.get(ledger="stock", month=month_start(-4).date()).row_count == 0
    assert out.getvalue().count("partition dropped") == 6
    assert _fingerprint() == before
    # the manifest names the month, its rows and where each chain stands at its end
    archive = LedgerArchive.objects.get(ledger="order", month=month_start(-3).date())
    manifest = json.loads((settings.LEDGER_ARCHIVE_DIR / archive.manifest_name).read_text())
    assert (manifest["ledger"], manifest["month"], manifest["rows"]) == ("order", _yyyymm(-3), 3)
    assert manifest["sha256"] == archive.sha256
    (head,) = manifest["heads"]
    assert head["aggregate"] == [history.pk]
    assert (head["first_version"], head["version"], head["rows"]) == (1, 2, 3)
    assert head["prev_hash"] == "00" * 32
    assert head["after"] == {"lines": {"SKU-1": 12, "SKU-2": 5}, "status": None}
    # and verify_ledger checks the archives and continues every chain, replay and seal,
    # and compares the snapshots
    out = io.StringIO()
    call_command("verify_ledger", stdout=out)
    assert "OK: all 6 archived ledger month(s) verify" in out.getvalue()
    # and so do the timelines' checks of one chain
    level = StockLevel.objects.get()
    assert list(order_chain_problems(order_ids=[history.pk])) == []
    assert list(stock_chain_problems(places=[(level.product_id, level.location_id)])) == []
    # the beat does not make the archived months again
    assert partitions_ensure(months_ahead=3, since=month_start(-4)) == 0
    # nothing left to do
    again = io.StringIO()
    _as_owner("ledger_archive", "--before", _yyyymm(-1), stdout=again)
    assert "Nothing to archive" in again.getvalue()


def test_the_current_month_is_refused(archive_dir):
    with pytest.raises(CommandError, match=r"current month .* latest allowed is --before"):
        _as_owner("ledger_archive", "--before", _yyyymm(1))


def test_a_month_with_rows_in_the_default_partition_is_refused(history, product):
    # given: a backdated row six months ago, where no partition is: the DEFAULT one
    with _clock(month_start(-6) + timedelta(days=3)):
        stock_receive(sku=product.sku, location="WH-A", quantity=1, audit=AUDIT)

    # when / then: refused, naming the month, and nothing archived
    with pytest.raises(CommandError, match=f"DEFAULT partition holds rows of {_yyyymm(-6)}"):
        _as_owner("ledger_archive", "--before", _yyyymm(-1))
    assert not LedgerArchive.objects.exists()
    assert relation_exists(partition(LEDGERS[0], -3))


def test_an_order_whose_months_interleave_in_its_chain_verifies_after_the_archive(history, product):
    # given: a change dated last month, then one backdated two months (a command that
    # took its time across a month's end looks like this): the order's chain runs through
    # month -3, month -1 (in the database), month -2 (archived), this month
    with _clock(month_start(-1) + timedelta(days=1)):
        order_adjust(order_id=history.pk, deltas={product.sku: 1}, audit=AUDIT)
    with _clock(month_start(-2) + timedelta(days=28)):
        order_adjust(order_id=history.pk, deltas={product.sku: 1}, audit=AUDIT)
        stock_adjust(sku=product.sku, location="WH-A", delta=1, audit=AUDIT)
    ledger_seal()

    # when
    _as_owner("ledger_archive", "--before", _yyyymm(-1))

    # then: month -2's rows of the order are two runs of its chain, and all verifies
    archive = LedgerArchive.objects.get(ledger="order", month=month_start(-2).date())
    assert [(h.first_version, h.version) for h in archive.heads.order_by("first_id")] == [
        (3, 3),
        (6, 6),
    ]
    code, output = _verify()
    assert code == 0, output


def test_a_month_changed_after_it_was_registered_is_archived_again(history, archive_dir, product):
    # given: the archiver died right after registering the order ledger's first month;
    # then a backdated row arrived in that month
    killed = _manage(archive_dir, "ledger_archive", "--before", _yyyymm(-2), fault="registered")
    assert killed.returncode == -signal.SIGKILL
    stale = LedgerArchive.objects.get()
    with _clock(month_start(-4) + timedelta(days=1)):
        order_adjust(order_id=history.pk, deltas={product.sku: 1}, audit=AUDIT)
    before = _fingerprint()

    # when: the database refuses the stale archive's drop; the rerun archives the month again
    with pytest.raises(psycopg.DatabaseError, match="not dropped"):
        as_owner_sql("SELECT history_ledger_archive_drop(%s)", [stale.pk])
    _as_owner("ledger_archive", "--before", _yyyymm(-2))

    # then: the new row is in the new archive, the stale registration stays, undropped
    month = LedgerArchive.objects.filter(ledger="order", month=month_start(-4).date())
    assert [(a.row_count, a.dropped_at is not None) for a in month.order_by("id")] == [
        (0, False),
        (1, True),
    ]
    assert _fingerprint() == before
    code, output = _verify()
    assert code == 0, output
    assert "NOTE" not in output


# --- the database's guard -------------------------------------------------------------------


def test_the_runtime_role_is_told_to_archive_and_restore_as_the_owner(history, archive_dir):
    # given
    before = _fingerprint()

    # when / then: as the runtime role the application runs as, both commands refuse
    for command, args in (
        ("ledger_archive", ["--before", _yyyymm(-1)]),
        ("ledger_restore", [str(archive_dir / "anything.csv.gz")]),
    ):
        with pytest.raises(CommandError, match="only the tables' owner may do: run them as"):
            call_command(command, *args)

    # then: nothing was written or dropped
    assert _fingerprint() == before
    assert not LedgerArchive.objects.exists()
    assert not archive_dir.exists() or list(archive_dir.iterdir()) == []


def test_the_drop_function_drops_only_a_registered_archive_of_exactly_that_partition(history):
    # given: a registry row the runtime role wrote itself, claiming one row too few
    _as_owner("ledger_archive", "--before", _yyyymm(-3))  # nothing: no month before -3
    archive = LedgerArchive.objects.create(
        ledger="order",
        month=month_start(-3).date(),
        file_name="x.csv.gz",
        manifest_name="x.manifest.json",
        sha256="0" * 64,
        manifest_sha256="0" * 64,
        row_count=2,
        rows_digest=bytes(32),
        first_id=1,
        last_id=2,
        archived_at=datetime.now(UTC),
    )
    name = partition(LEDGERS[0], -3)

    # when / then: the function refuses the owner, an unknown archive too, and the
    # partition stays
    for archive_id in (archive.pk, archive.pk + 1000):
        with pytest.raises(psycopg.DatabaseError, match=r"not dropped|no ledger archive"):
            as_owner_sql("SELECT history_ledger_archive_drop(%s)", [archive_id])
    assert relation_exists(name)
    # the runtime role may not even call it (nor the restore), can neither drop nor detach
    # a partition, nor mark an archive dropped
    for statement in (
        f"SELECT history_ledger_archive_drop({archive.pk})",
        f"SELECT history_ledger_archive_restore({archive.pk})",
        f"DROP TABLE {name}",
        f"ALTER TABLE {LEDGERS[0]} DETACH PARTITION {name}",
        f"UPDATE history_ledgerarchive SET dropped_at = now() WHERE id = {archive.pk}",
        f"DELETE FROM history_ledgerarchive WHERE id = {archive.pk}",
    ):
        with (
            pytest.raises(DatabaseError, match=r"must be owner|permission denied"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    # and the owner meets the registry's trigger
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        as_owner_sql(f"UPDATE history_ledgerarchive SET row_count = 3 WHERE id = {archive.pk}")


@pytest.mark.parametrize(
    "statement", ["UPDATE {} SET reason = 'rewritten'", "DELETE FROM {}", "TRUNCATE {}"]
)
def test_the_ledgers_stay_append_only_after_an_archive(history, statement):
    # given
    _as_owner("ledger_archive", "--before", _yyyymm(-1))

    # when / then
    for table in (LEDGERS[0], partition(LEDGERS[0], 0)):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            as_owner_sql(statement.format(table))


# --- tampering --------------------------------------------------------------------------------


def _rewrite(path, change) -> None:
    with gzip.open(path, "rt", newline="") as file:
        text = file.read()
    with gzip.open(path, "wt", newline="") as file:
        file.write(change(text))


def test_verify_ledger_names_an_edited_archive_file(history):
    # given: an archived row's quantity rewritten in the file
    _as_owner("ledger_archive", "--before", _yyyymm(-1))
    archive = LedgerArchive.objects.get(ledger="order", month=month_start(-3).date())
    _rewrite(settings.LEDGER_ARCHIVE_DIR / archive.file_name, lambda t: t.replace(",12,", ",13,"))

    # when
    code, output = _verify()

    # then
    assert code == 1
    assert f"archive of the order ledger's {_yyyymm(-3)}: its file's SHA-256" in output
    assert "was edited: its content no longer hashes to its stored hash" in output
    assert "TAMPERED" in output


def test_verify_ledger_names_a_missing_file_and_a_registry_row_that_disagrees(history):
    # given: one archive's file deleted, another's registry row edited by a superuser
    _as_owner("ledger_archive", "--before", _yyyymm(-1))
    gone = LedgerArchive.objects.get(ledger="stock", month=month_start(-3).date())
    (settings.LEDGER_ARCHIVE_DIR / gone.file_name).unlink()
    edited = LedgerArchive.objects.get(ledger="order", month=month_start(-2).date())
    as_owner_sql("ALTER TABLE history_ledgerarchive DISABLE TRIGGER USER")
    try:
        as_owner_sql(f"UPDATE history_ledgerarchive SET row_count = 7 WHERE id = {edited.pk}")
    finally:
        as_owner_sql("ALTER TABLE history_ledgerarchive ENABLE TRIGGER USER")

    # when
    code, output = _verify()

    # then
    assert code == 1
    assert f"archive of the stock ledger's {_yyyymm(-3)}: its file" in output
    assert "is missing" in output
    assert f"archive of the order ledger's {_yyyymm(-2)}: the file holds 1 rows" in output
    assert "the registry says 7" in output


def test_verify_ledger_names_a_registered_head_that_was_rewritten(history):
    # given: a superuser moves the order's archived head to another hash
    _as_owner("ledger_archive", "--before", _yyyymm(-1))
    as_owner_sql("ALTER TABLE history_ledgerarchivehead DISABLE TRIGGER USER")
    try:
        as_owner_sql(
            "UPDATE history_ledgerarchivehead SET hash = %s WHERE aggregate_id = %s "
            "AND location_id IS NULL AND first_version = 1",
            [bytes(32), history.pk],
        )
    finally:
        as_owner_sql("ALTER TABLE history_ledgerarchivehead ENABLE TRIGGER USER")

    # when
    code, output = _verify()

    # then: the registry disagrees with the file, and the chain no longer links
    assert code == 1
    assert "the registry's chain heads do not match the file's rows" in output
    assert f"order {history.pk}: chain: a row is missing before the archived rows" in output


# --- restore ---------------------------------------------------------------------------------


def test_a_month_is_restored_verified_and_can_be_archived_again(history):
    # given
    before = _fingerprint()
    _as_owner("ledger_archive", "--before", _yyyymm(-1))
    archive = LedgerArchive.objects.get(ledger="order", month=month_start(-2).date())
    path = settings.LEDGER_ARCHIVE_DIR / archive.file_name

    # when
    out = io.StringIO()
    _as_owner("ledger_restore", str(path), stdout=out)

    # then: the month is back, rows and hashes, and everything verifies
    assert "1 rows restored" in out.getvalue()
    assert relation_exists(partition(LEDGERS[0], -2))
    archive.refresh_from_db()
    assert archive.restored_at is not None
    assert _fingerprint() == before
    code, output = _verify()
    assert code == 0, output
    assert "OK: all 5 archived ledger month(s) verify" in output
    # a second restore is refused: the month is present
    with pytest.raises(CommandError, match="present already"):
        _as_owner("ledger_restore", str(path))
    # and it can be archived again
    _as_owner("ledger_archive", "--before", _yyyymm(-1))
    assert not relation_exists(partition(LEDGERS[0], -2))
    assert _verify()[0] == 0


# --- a crash at every step --------------------------------------------------------------------


def _manage(archive_dir, *args, fault: str = "") -> subprocess.CompletedProcess:
    """manage.py in a process of its own, as the owner, on the test database."""
    db = connection.settings_dict
    owner = database.owner_dsn()["user"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": (
            f"postgres://{owner}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "LEDGER_ARCHIVE_DIR": str(archive_dir),
        "LEDGER_ARCHIVE_FAULT": fault,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("step", [s for s in STEPS if s != "restore_copied"])
def test_a_crash_after_any_step_loses_nothing_and_a_rerun_finishes(history, archive_dir, step):
    # given
    before = _fingerprint()

    # when: the archiver is killed (SIGKILL, by itself) right after the step
    killed = _manage(archive_dir, "ledger_archive", "--before", _yyyymm(-1), fault=step)

    # then: every row is in the database or in a verified archive
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert _fingerprint() == before
    # and a second run finishes the job
    rerun = _manage(archive_dir, "ledger_archive", "--before", _yyyymm(-1))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert LedgerArchive.objects.filter(dropped_at__isnull=False).count() == 6
    assert not any(relation_exists(partition(t, m)) for t in LEDGERS for m in (-4, -3, -2))
    assert _fingerprint() == before
    assert list(archive_dir.glob(".*partial")) == []
    code, output = _verify()
    assert code == 0, output


def test_a_crash_in_the_middle_of_a_restore_leaves_the_archive_and_a_rerun_restores(
    history, archive_dir
):
    # given
    _as_owner("ledger_archive", "--before", _yyyymm(-1))
    before = _fingerprint()
    archive = LedgerArchive.objects.get(ledger="stock", month=month_start(-3).date())
    path = str(archive_dir / archive.file_name)

    # when: killed after the rows were copied in, before the commit
    killed = _manage(archive_dir, "ledger_restore", path, fault="restore_copied")

    # then: rolled back, the month still archived; a rerun restores it
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    archive.refresh_from_db()
    assert archive.restored_at is None
    assert not relation_exists(partition(LEDGERS[1], -3))
    assert _fingerprint() == before
    rerun = _manage(archive_dir, "ledger_restore", path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert relation_exists(partition(LEDGERS[1], -3))
    assert _fingerprint() == before
    assert _verify()[0] == 0


# --- reads of archived months -----------------------------------------------------------------


def test_as_of_before_the_archive_horizon_is_a_410_problem_not_a_wrong_answer(history, api):
    # given
    _as_owner("ledger_archive", "--before", _yyyymm(-1))
    url = f"/api/v1/orders/{history.pk}/"

    # when
    archived = api.get(url, {"as_of": (month_start(-2) + timedelta(days=28)).isoformat()})
    later = api.get(url, {"as_of": (month_start(-1) + timedelta(days=1)).isoformat()})

    # then: a time whose state needs archived rows is refused, naming the month
    body = assert_problem(archived, 410, "ledger_archived")
    assert _yyyymm(-2) in body["detail"] and "ledger_restore" in body["detail"]
    # and so is a later one (the replay starts from the first row); the current state is
    # served as ever
    assert_problem(later, 410, "ledger_archived")
    assert api.get(url).json()["lines"] == [
        {"sku": "SKU-1", "quantity": 10},
        {"sku": "SKU-2", "quantity": 8},
    ]


def test_a_proof_that_needs_archived_rows_is_a_410_problem(history, api):
    # given: the order's live row was sealed by a seal that covers only live rows, but the
    # consistency proof from an archived month's seal needs its rows
    _as_owner("ledger_archive", "--before", _yyyymm(-1))

    # when
    proof = api.get(f"/api/v1/orders/{history.pk}/proof/")
    consistency = api.get("/api/v1/seals/consistency/", {"first": 1, "second": 3})

    # then: the live row's proof is served; the old seals' consistency is refused
    assert proof.status_code == 200, proof.content
    assert proof.json()["seal"]["number"] == 3
    assert_problem(consistency, 410, "ledger_archived")


def test_rebuild_projections_is_refused_while_months_are_archived(history):
    # given
    _as_owner("ledger_archive", "--before", _yyyymm(-1))

    # when / then
    with pytest.raises(CommandError, match=f"archived out of the database .*{_yyyymm(-3)}"):
        call_command("rebuild_projections")


def test_a_restore_from_a_copy_elsewhere_checks_that_copy(history, archive_dir, tmp_path):
    # given: the archive brought back from object storage into another directory, and an
    # edited copy of it in a third
    _as_owner("ledger_archive", "--before", _yyyymm(-1))
    archive = LedgerArchive.objects.get(ledger="order", month=month_start(-3).date())
    copies = {}
    for name in ("fetched", "edited"):
        copies[name] = tmp_path / name
        copies[name].mkdir()
        for file in (archive.file_name, archive.manifest_name):
            shutil.copy(archive_dir / file, copies[name] / file)
    (archive_dir / archive.file_name).unlink()
    _rewrite(copies["edited"] / archive.file_name, lambda t: t.replace(",12,", ",13,"))

    # when / then: the edited copy is refused, the intact one restored
    with pytest.raises(CommandError, match="does not verify: its file's SHA-256"):
        _as_owner("ledger_restore", str(copies["edited"] / archive.manifest_name))
    _as_owner("ledger_restore", str(copies["fetched"] / archive.manifest_name))
    assert OrderLedgerEntry.objects.filter(occurred_at__lt=month_start(-2)).count() == 3
