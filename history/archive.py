"""The ledger archive: old months of the order and stock ledgers moved out of the database
into verified files, and back (README, "Archive").

A month of a ledger is one partition (history migration 0017). `ledger_archive_month`
writes it to `LEDGER_ARCHIVE_DIR` as a gzip'd CSV plus a JSON manifest, reads the file back
and checks it (row count, ids, every row's chain hash, the SHA-256 of the file), registers
it (LedgerArchive, with the chain heads per aggregate: LedgerArchiveHead), and only then
has the owner's `history_ledger_archive_drop` detach and drop the partition, which that
function refuses unless the registered archive holds exactly the partition's rows (history
migration 0018). Each step is durable before the next starts (files fsynced and renamed
into place, the registry committed), so a crash anywhere leaves the partition or a
verified archive, and running it again finishes the job.

Why CSV from `COPY ... TO STDOUT`: the server writes every value in its own text form (the
bytea hashes as hex, the times in UTC), with no per-row Python on the way out;
`ledger_restore` feeds the very same bytes to `COPY ... FROM STDIN`, which reads those
forms back exactly (a JSON lines file would need our own encoding of each type both ways);
and any tool reads CSV. gzip with no name and no time in its header, so the same rows
make the same bytes.

`verify_ledger` checks each archived month's file against the registry and goes on with
each chain and replay from the heads (`archived_chain_rows`, `archived_runs`), and
rebuilds the seals with the archived rows (`archive_problems` loads them into a temporary
table)."""

import contextlib
import csv
import gzip
import hashlib
import io
import json
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from django.conf import settings
from django.db import DataError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg import sql

from history.chain import order_entry_hash, stock_entry_hash
from history.models import (
    LedgerArchive,
    LedgerArchiveHead,
    LedgerKind,
    OrderEventType,
    OrderLedgerEntry,
    StockLedgerEntry,
)

FORMAT = "ordertrack/ledger-archive/v1"
LEDGERS = {LedgerKind.ORDER: OrderLedgerEntry, LedgerKind.STOCK: StockLedgerEntry}
STOCK_QUANTITIES = ("on_hand", "reserved", "in_transit", "backorder")
# The fault-injection hook of the crash tests: the process SIGKILLs itself right after the
# step this variable names (history/tests/test_archive.py).
FAULT_ENV = "LEDGER_ARCHIVE_FAULT"
STEPS = ("exported", "written", "manifest", "registered", "dropped", "restore_copied")
_LOCK = 0xA4C1  # advisory lock: one archiver or restorer at a time


class ArchiveRefused(Exception):
    """The archive or restore was refused; the message says why and what to do."""


def _fault(step: str) -> None:
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def columns(ledger: str) -> list[str]:
    return [f.column for f in LEDGERS[ledger]._meta.concrete_fields]


def archive_dir() -> Path:
    return Path(settings.LEDGER_ARCHIVE_DIR)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    index = month.year * 12 + month.month  # the next month's, counted from 0
    return (
        datetime(month.year, month.month, 1, tzinfo=UTC),
        datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC),
    )


def this_month() -> date:
    return timezone.now().astimezone(UTC).date().replace(day=1)


def _table(ledger: str) -> str:
    return LEDGERS[ledger]._meta.db_table


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_durably(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write `path` through a hidden partial file, fsynced, then renamed into place: the
    name holds either the previous file or the whole new one, never half of one."""
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as raw:
        write(raw)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(partial, path)
    _fsync_dir(path.parent)


# --- Reading an archive file back -------------------------------------------------------------


@dataclass
class Contents:
    """What an archive file holds, as read back and recomputed from its rows."""

    sha256: str = ""
    rows: int = 0
    first_id: int | None = None
    last_id: int | None = None
    first_occurred_at: datetime | None = None
    last_occurred_at: datetime | None = None
    rows_digest: bytes = b""
    heads: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _bytea(text: str) -> bytes:
    return bytes.fromhex(text[2:]) if text.startswith("\\x") else b""


def _key(ledger: str, row: dict) -> tuple[int, ...]:
    if ledger == LedgerKind.ORDER:
        return (int(row["order_id"]),)
    return (int(row["product_id"]), int(row["location_id"]))


def archive_read(
    path: Path,
    *,
    ledger: str,
    month: date,
    on_row: Callable[[tuple[int, int, bytes]], None] | None = None,
) -> Contents:
    """Read an archive file back: its SHA-256, then every row, whose chain hash is
    recomputed (history.chain) and whose place in its chain and replay is followed. The
    rows of each aggregate that link one to the next make one head (usually one per
    aggregate). `on_row` gets (id, txid, hash) of each row."""
    contents = Contents(sha256=file_sha256(path))
    entry_hash = order_entry_hash if ledger == LedgerKind.ORDER else stock_entry_hash
    lower, upper = month_bounds(month)
    digest = hashlib.sha256()
    runs: dict[tuple[int, ...], dict] = {}
    heads: list[tuple[tuple[int, ...], dict]] = []
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
            reader = csv.DictReader(text)
            if reader.fieldnames != columns(ledger):
                contents.problems.append(f"its columns are not the {ledger} ledger's")
                return contents
            for row in reader:
                row_id = int(row["id"])
                if contents.last_id is not None and row_id <= contents.last_id:
                    contents.problems.append(f"row {row_id} follows row {contents.last_id}")
                row["occurred_at"] = moment = datetime.fromisoformat(row["occurred_at"])
                prev, stored = _bytea(row["prev_hash"]), _bytea(row["hash"])
                if not lower <= moment < upper:
                    contents.problems.append(f"row {row_id} is of another month ({moment})")
                if len(prev) != 32 or entry_hash(prev, row) != stored:
                    contents.problems.append(
                        f"row {row_id} (version {row['version']}) was edited: its content "
                        "no longer hashes to its stored hash"
                    )
                digest.update(stored)
                contents.rows += 1
                contents.first_id = row_id if contents.first_id is None else contents.first_id
                contents.last_id = row_id
                contents.first_occurred_at = min(filter(None, (contents.first_occurred_at, moment)))
                contents.last_occurred_at = max(filter(None, (contents.last_occurred_at, moment)))
                key = _key(ledger, row)
                run = runs.get(key)
                if run is None or bytes.fromhex(run["hash"]) != prev:
                    run = runs[key] = _run_start(ledger, key, row_id, prev, row)
                    heads.append((key, run))
                _run_extend(ledger, run, row_id, stored, row, contents.problems)
                if on_row is not None:
                    on_row((row_id, int(row["txid"]), stored))
    except (OSError, EOFError, ValueError, KeyError, csv.Error) as exc:
        contents.problems.append(f"it cannot be read: {exc}")
    contents.rows_digest = digest.digest()
    contents.heads = [run for _, run in sorted(heads, key=lambda h: (h[0], h[1]["first_id"]))]
    return contents


def _run_start(ledger: str, key, row_id: int, prev: bytes, row: dict) -> dict:
    version = int(row["version"])
    if ledger == LedgerKind.ORDER:
        before, after = {}, {"lines": {}, "status": None}
    else:
        before = {q: int(row[f"{q}_after"]) - int(row[f"delta_{q}"]) for q in STOCK_QUANTITIES}
        after = dict(before)
    return {
        "aggregate": list(key),
        "first_id": row_id,
        "last_id": row_id,
        "rows": 0,
        "prev_hash": prev.hex(),
        "hash": prev.hex(),
        "first_version": version,
        "version": version,
        "before": before,
        "after": after,
    }


def _run_extend(ledger: str, run: dict, row_id: int, stored: bytes, row: dict, problems) -> None:
    """Fold a row into its run, as the replays do (history.selectors), noting breaks."""
    version, name = int(row["version"]), f"row {row_id} (version {row['version']})"
    if run["rows"] and version not in (
        (run["version"], run["version"] + 1)
        if ledger == LedgerKind.ORDER
        else (run["version"] + 1,)
    ):
        problems.append(f"{name}: version jumps from {run['version']}")
    if ledger == LedgerKind.ORDER:
        sku, before = row["sku"], int(row["quantity_before"])
        lines = run["after"]["lines"]
        if sku in lines and lines[sku] != before:
            problems.append(f"{name} {sku}: before={before}, but the ledger had {lines[sku]}")
        run["before"].setdefault(sku, before)
        lines[sku] = int(row["quantity_after"])
        if row["event_type"] in (OrderEventType.CANCELLED, OrderEventType.FULFILLED):
            run["after"]["status"] = row["event_type"].split(".")[1]
    else:
        for q in STOCK_QUANTITIES:
            after = int(row[f"{q}_after"])
            if run["after"][q] + int(row[f"delta_{q}"]) != after:
                problems.append(f"{name}: {q} does not continue from the row before")
            run["after"][q] = after
    run["rows"] += 1
    run["last_id"], run["hash"], run["version"] = row_id, stored.hex(), version


# --- Archiving ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archived:
    ledger: str
    month: date
    rows: int
    file: Path
    resumed: bool  # registered by an earlier run that stopped before the drop


def ledger_partition_months(ledger: str) -> list[date]:
    """The months that have a partition of this ledger attached, oldest first."""
    table = _table(ledger)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT right(c.relname, 6) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass AND c.relname ~ %s ORDER BY 1",
            [table, f"^{table}_p[0-9]{{6}}$"],
        )
        return [date(int(m[:4]), int(m[4:]), 1) for (m,) in cursor.fetchall()]


def default_partition_months(ledger: str, *, before: date) -> list[str]:
    """The months (YYYY-MM) before `before` that have rows in the ledger's DEFAULT
    partition: rows that have no month partition to archive."""
    table = _table(ledger)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM') FROM {table} "
            "WHERE tableoid = %s::regclass AND occurred_at < %s ORDER BY 1",
            [f"{table}_default", month_bounds(before)[0]],
        )
        return [m for (m,) in cursor.fetchall()]


def ledger_archive_plan(*, before: date) -> list[tuple[str, date]]:
    """The (ledger, month) partitions `ledger_archive` would archive: every month before
    `before` that has a partition. Refuses the current month (and later ones), and any run
    while the DEFAULT partitions hold rows of a month before `before`."""
    current = this_month()
    if before > current:
        raise ArchiveRefused(
            f"--before {before:%Y-%m} would archive the current month ({current:%Y-%m}), whose "
            f"rows are still being written: the latest allowed is --before {current:%Y-%m}."
        )
    problems = [
        f"the {ledger} ledger's DEFAULT partition holds rows of {', '.join(months)}"
        for ledger in LEDGERS
        if (months := default_partition_months(ledger, before=before))
    ]
    if problems:
        raise ArchiveRefused(
            "; ".join(problems) + ": those rows belong to no month partition and would not "
            "be archived. Nothing was archived. Move them into their months first (as the "
            "owner: detach the DEFAULT partition, create the months, insert its rows into "
            "the parent, drop it and attach a new one), then run ledger_archive again."
        )
    return sorted(
        (
            (ledger, month)
            for ledger in LEDGERS
            for month in ledger_partition_months(ledger)
            if month < before
        ),
        key=lambda plan: (plan[1], plan[0] != LedgerKind.ORDER),
    )


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    with connection.cursor() as cursor:
        # The runtime role may not drop or re-create a ledger month (history.services.
        # runtime_role_grant): a web or worker process that could would be able to drop a
        # month after registering an archive it never wrote.
        cursor.execute(
            "SELECT has_function_privilege(%s, 'EXECUTE')",
            ["history_ledger_archive_drop(bigint)"],
        )
        if not cursor.fetchone()[0]:
            raise ArchiveRefused(
                "ledger_archive and ledger_restore drop and re-create ledger partitions, which "
                "only the tables' owner may do: run them as you run migrate (DATABASE_URL "
                "naming the owner; with the embedded default, EMBEDDED_POSTGRES_USER=postgres)"
            )
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK])
        if not cursor.fetchone()[0]:
            raise ArchiveRefused("another ledger_archive or ledger_restore is running")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK])


def ledger_archive(*, before: date, report: Callable[[Archived], None] = lambda a: None):
    """Archive, verify and drop every ledger partition older than `before`'s month (see the
    module's docstring); what was archived. One archiver at a time."""
    with _exclusive():
        done = []
        for ledger, month in ledger_archive_plan(before=before):
            archived = ledger_archive_month(ledger=ledger, month=month)
            report(archived)
            done.append(archived)
        return done


def _names(ledger: str, month: date) -> tuple[str, str]:
    base = f"{_table(ledger)}_p{month:%Y%m}"
    return f"{base}.csv.gz", f"{base}.manifest.json"


def ledger_archive_month(*, ledger: str, month: date) -> Archived:
    """Archive one month of one ledger, verify the file, register it, drop the partition.
    The archive an earlier run registered but did not drop is checked against its file
    again and used, unless the file or the partition changed since: then the month is
    archived again (the earlier registration stays, superseded)."""
    registered = (
        LedgerArchive.objects.filter(ledger=ledger, month=month, dropped_at__isnull=True)
        .order_by("-id")
        .first()
    )
    resumed = registered is not None and not any(_file_problems(registered))
    if not resumed:
        registered = _archive_and_register(ledger, month)
    try:
        _drop(registered)
    except DataError as exc:
        if not resumed:
            raise ArchiveRefused(
                f"the {ledger} ledger's {month:%Y-%m} changed while it was being archived (a "
                "backdated row written meanwhile?), so its partition was not dropped: run "
                f"ledger_archive again. {exc}".strip()
            ) from exc
        registered, resumed = _archive_and_register(ledger, month), False
        _drop(registered)
    _fault("dropped")
    path = archive_dir() / registered.file_name
    return Archived(ledger, month, registered.row_count, path, resumed)


def _drop(archive: LedgerArchive) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT history_ledger_archive_drop(%s)", [archive.pk])


def _archive_and_register(ledger: str, month: date) -> LedgerArchive:
    directory = archive_dir()
    directory.mkdir(parents=True, exist_ok=True)
    file_name, manifest_name = _names(ledger, month)
    path = directory / file_name
    stats = _export(ledger, month, path)
    contents = archive_read(path, ledger=ledger, month=month)
    expected = (stats[0], stats[1], stats[2], bytes(stats[3]))
    found = (contents.rows, contents.first_id, contents.last_id, contents.rows_digest)
    if contents.problems or found != expected:
        raise ArchiveRefused(
            f"the archive of the {ledger} ledger's {month:%Y-%m} did not read back as "
            f"written ({'; '.join(contents.problems) or f'{found[:3]} != {expected[:3]}'}): "
            "the partition was not dropped."
        )
    manifest = {
        "format": FORMAT,
        "ledger": ledger,
        "table": _table(ledger),
        "month": f"{month:%Y-%m}",
        "file": file_name,
        "sha256": contents.sha256,
        "encoding": "gzip; CSV with a header, as PostgreSQL's COPY writes it",
        "columns": columns(ledger),
        "rows": contents.rows,
        "first_id": contents.first_id,
        "last_id": contents.last_id,
        "first_occurred_at": _iso(contents.first_occurred_at),
        "last_occurred_at": _iso(contents.last_occurred_at),
        "rows_digest": contents.rows_digest.hex(),
        "heads": contents.heads,
    }
    data = json.dumps(manifest, sort_keys=True, indent=1).encode()
    _write_durably(directory / manifest_name, lambda file: file.write(data))
    _fault("manifest")
    with transaction.atomic():
        archive = LedgerArchive.objects.create(
            ledger=ledger,
            month=month,
            file_name=file_name,
            manifest_name=manifest_name,
            sha256=contents.sha256,
            manifest_sha256=hashlib.sha256(data).hexdigest(),
            row_count=contents.rows,
            rows_digest=contents.rows_digest,
            first_id=contents.first_id,
            last_id=contents.last_id,
            first_occurred_at=contents.first_occurred_at,
            last_occurred_at=contents.last_occurred_at,
            archived_at=timezone.now(),
        )
        LedgerArchiveHead.objects.bulk_create(
            (_head_model(archive, head) for head in contents.heads), batch_size=5000
        )
    _fault("registered")
    return archive


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _head_model(archive: LedgerArchive, head: dict) -> LedgerArchiveHead:
    key = head["aggregate"]
    return LedgerArchiveHead(
        archive=archive,
        aggregate_id=key[0],
        location_id=key[1] if len(key) > 1 else None,
        first_id=head["first_id"],
        last_id=head["last_id"],
        rows=head["rows"],
        prev_hash=bytes.fromhex(head["prev_hash"]),
        hash=bytes.fromhex(head["hash"]),
        first_version=head["first_version"],
        version=head["version"],
        before=head["before"],
        after=head["after"],
    )


def _head_document(head: LedgerArchiveHead) -> dict:
    return {
        "aggregate": [head.aggregate_id]
        if head.location_id is None
        else [head.aggregate_id, head.location_id],
        "first_id": head.first_id,
        "last_id": head.last_id,
        "rows": head.rows,
        "prev_hash": bytes(head.prev_hash).hex(),
        "hash": bytes(head.hash).hex(),
        "first_version": head.first_version,
        "version": head.version,
        "before": head.before,
        "after": head.after,
    }


_STATS = (
    "SELECT count(*), min(id), max(id), "
    "sha256(coalesce(string_agg(hash, ''::bytea ORDER BY id), ''::bytea)) "
    "FROM {} WHERE occurred_at >= %s AND occurred_at < %s"
)


def _export(ledger: str, month: date, path: Path) -> tuple:
    """COPY the month's rows, in id order, into `path` (gzip'd CSV); the database's own
    count, first and last id and digest of them, read in the same snapshot."""
    table = _table(ledger)
    lower, upper = month_bounds(month)
    query = sql.SQL(
        "COPY (SELECT {} FROM {} WHERE occurred_at >= {} AND occurred_at < {} ORDER BY id) "
        "TO STDOUT (FORMAT csv, HEADER true)"
    ).format(
        sql.SQL(", ").join(map(sql.Identifier, columns(ledger))),
        sql.Identifier(table),
        sql.Literal(lower),
        sql.Literal(upper),
    )
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if outermost:  # the count and the rows from one snapshot
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cursor.execute("SET LOCAL TimeZone = 'UTC'")
        cursor.execute("SET LOCAL DateStyle = 'ISO'")
        cursor.execute(_STATS.format(table), [lower, upper])
        stats = cursor.fetchone()

        def write(raw) -> None:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed:
                with cursor.cursor.copy(query) as copy:
                    for data in copy:
                        compressed.write(data)
                _fault("exported")

        _write_durably(path, write)
    _fault("written")
    return stats


# --- Verifying the archived months ----------------------------------------------------------


def archives_live() -> Iterable[LedgerArchive]:
    """The archived months: dropped from the database, not restored."""
    return LedgerArchive.objects.filter(dropped_at__isnull=False, restored_at__isnull=True)


def archives_pending() -> list[LedgerArchive]:
    """Archives registered whose partition a crashed run did not drop yet: the latest
    archive of a month, when it is not dropped."""
    latest = {}
    for archive in LedgerArchive.objects.order_by("id"):
        latest[archive.ledger, archive.month] = archive
    return [archive for archive in latest.values() if archive.dropped_at is None]


def _read(archive: LedgerArchive, on_row=None, directory: Path | None = None) -> Contents | None:
    path = (directory or archive_dir()) / archive.file_name
    if not path.exists():
        return None
    return archive_read(path, ledger=archive.ledger, month=archive.month, on_row=on_row)


def _file_problems(archive: LedgerArchive, directory: Path | None = None) -> Iterator[str]:
    """How an archive's files (in `directory`, by default LEDGER_ARCHIVE_DIR) disagree
    with the registry and with themselves."""
    yield from _check(archive, _read(archive, directory=directory), directory)


def _check(
    archive: LedgerArchive, contents: Contents | None, directory: Path | None = None
) -> Iterator[str]:
    directory = directory or archive_dir()
    if contents is None:
        yield f"its file {directory / archive.file_name} is missing"
        return
    if contents.sha256 != archive.sha256:
        yield (
            f"its file's SHA-256 is {contents.sha256[:16]}…, the registry says "
            f"{archive.sha256[:16]}…: the file was changed"
        )
    yield from contents.problems
    found = (contents.rows, contents.first_id, contents.last_id, contents.rows_digest)
    registered = (archive.row_count, archive.first_id, archive.last_id, bytes(archive.rows_digest))
    if found != registered:
        yield (
            f"the file holds {found[0]} rows (ids {found[1]} to {found[2]}), the registry says "
            f"{registered[0]} (ids {registered[1]} to {registered[2]})"
            + ("" if found[:3] != registered[:3] else ", with other row hashes")
        )
    manifest_path = directory / archive.manifest_name
    if not manifest_path.exists():
        yield f"its manifest {manifest_path} is missing"
        return
    data = manifest_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != archive.manifest_sha256:
        yield "its manifest's SHA-256 is not the registry's: the manifest was changed"
    try:
        manifest = json.loads(data)
    except ValueError:
        yield "its manifest is not JSON"
        return
    if manifest.get("heads") != contents.heads or manifest.get("sha256") != contents.sha256:
        yield "its manifest's chain heads or checksum do not match the file's rows"
    stored = [
        _head_document(head)
        for head in archive.heads.order_by("aggregate_id", "location_id", "first_id")
    ]
    if stored != contents.heads:
        yield "the registry's chain heads do not match the file's rows"


ARCHIVED_ROWS = {ledger: f"archived_{_table(ledger)}" for ledger in LEDGERS}


def archive_problems(*, load_rows: bool = False) -> Iterator[str]:
    """Every way the archived months' files disagree with the registry or with themselves.
    With `load_rows`, each archived row's (id, txid, hash) also goes into a temporary table
    (ARCHIVED_ROWS, for this connection), so that the seals can be rebuilt with them
    (history.seals.seal_problems)."""
    if load_rows:
        with connection.cursor() as cursor:
            for table in ARCHIVED_ROWS.values():
                cursor.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} "
                    "(id bigint, txid bigint, hash bytea)"
                )
                cursor.execute(f"TRUNCATE {table}")
    for archive in archives_live().order_by("month", "ledger"):
        if load_rows:
            # No other query while the COPY is open: the checks run after it.
            target = ARCHIVED_ROWS[archive.ledger]
            with (
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY {target} (id, txid, hash) FROM STDIN") as copy,
            ):
                contents = _read(archive, copy.write_row)
        else:
            contents = _read(archive)
        for problem in _check(archive, contents):
            yield f"archive of the {archive.ledger} ledger's {archive.month:%Y-%m}: {problem}"


# --- Continuing the chains and the replays from the heads -----------------------------------


def _live_heads(ledger: str, aggregates: Iterable[int] | None = None):
    heads = LedgerArchiveHead.objects.filter(
        archive__ledger=ledger, archive__dropped_at__isnull=False, archive__restored_at__isnull=True
    )
    if aggregates is not None:
        heads = heads.filter(aggregate_id__in=list(aggregates))
    return heads.order_by("aggregate_id", "location_id", "first_id")


def archived_chain_rows(ledger: str, *, aggregates: Iterable[int] | None = None) -> Iterator[dict]:
    """Each archived run of an aggregate's chain as one row for history.verification (the
    archive's own rows are checked by archive_problems): it links to `prev_hash` and ends
    at `hash`, in the aggregate's key order then id order, like ledger_rows."""
    fields = ("aggregate_id", "location_id", "first_id", "last_id", "first_version")
    for head in _live_heads(ledger, aggregates).values(*fields, "prev_hash", "hash").iterator(2000):
        key = (
            {"order_id": head["aggregate_id"]}
            if ledger == LedgerKind.ORDER
            else {"product_id": head["aggregate_id"], "location_id": head["location_id"]}
        )
        yield {
            **key,
            "id": head["first_id"],
            "archived_to": head["last_id"],
            "version": head["first_version"],
            "prev_hash": bytes(head["prev_hash"]),
            "hash": bytes(head["hash"]),
        }


@dataclass(frozen=True)
class ArchivedRun:
    """An aggregate's rows in an archived month, as the replays see them: one step from the
    state `before` (the first rows continue from it) to the state `after`."""

    id: int  # the first row's id
    last_id: int
    first_version: int
    version: int
    rows: int
    before: dict
    after: dict
    product_id: int | None = None
    location_id: int | None = None
    sku: str = ""
    location_code: str = ""

    @property
    def span(self) -> str:
        return f"the archived rows {self.id} to {self.last_id}"


def archived_runs(ledger: str, *, aggregates: Iterable[int] | None = None) -> Iterator[tuple]:
    """(key, ArchivedRun) of every archived run, in key order then id order; the key is the
    order id, or (product id, location id)."""
    for head in _live_heads(ledger, aggregates).iterator(2000):
        run = ArchivedRun(
            id=head.first_id,
            last_id=head.last_id,
            first_version=head.first_version,
            version=head.version,
            rows=head.rows,
            before=head.before,
            after=head.after,
            product_id=head.aggregate_id if head.location_id is not None else None,
            location_id=head.location_id,
        )
        key = (
            head.aggregate_id if head.location_id is None else (head.aggregate_id, head.location_id)
        )
        yield key, run


def archived_before(*, ledger: str, aggregate_id: int, at: datetime) -> date | None:
    """The latest archived month holding rows of this aggregate that are not after `at`
    (so a replay up to `at` would miss them); None if there is none."""
    lower = date(at.astimezone(UTC).year, at.astimezone(UTC).month, 1)
    head = (
        _live_heads(ledger, [aggregate_id])
        .filter(archive__month__lte=lower)
        .filter(Q(archive__month__lt=lower) | Q(archive__first_occurred_at__lte=at))
        .order_by("-archive__month")
        .values_list("archive__month", flat=True)
        .first()
    )
    return head


# --- Restoring ---------------------------------------------------------------------------------


def ledger_restore(*, path: Path) -> LedgerArchive:
    """Bring an archived month back: `path` is its archive file or its manifest. The file
    is checked against the registry first; then, in one transaction, the owner's
    history_ledger_archive_restore re-creates the month's partition (refused when the
    month has rows), the rows are copied in through the parent table, and their count, ids
    and hashes are checked against the manifest and the registry."""
    with _exclusive():
        return _restore(path)


def _restore(path: Path) -> LedgerArchive:
    name = path.name
    base = name.removesuffix(".manifest.json").removesuffix(".csv.gz")
    manifest_path = path.with_name(f"{base}.manifest.json")
    file_path = path.with_name(f"{base}.csv.gz")
    if not manifest_path.exists() or not file_path.exists():
        raise ArchiveRefused(f"{file_path} and {manifest_path} must both exist")
    try:
        manifest = json.loads(manifest_path.read_bytes())
        ledger = LedgerKind(manifest["ledger"])
        month = date.fromisoformat(f"{manifest['month']}-01")
    except (ValueError, KeyError) as exc:
        raise ArchiveRefused(f"{manifest_path} is not a ledger archive's manifest: {exc}") from exc
    archives = LedgerArchive.objects.filter(ledger=ledger, month=month)
    archive = archives.filter(dropped_at__isnull=False, restored_at__isnull=True).first()
    if archive is None:
        present = archives.exists() or _month_rows(ledger, month)
        raise ArchiveRefused(
            f"the {ledger} ledger's {month:%Y-%m} is "
            + (
                "present already (not archived, or restored): nothing to restore"
                if present
                else "not a registered archive: nothing to restore"
            )
        )
    if (file_path.name, manifest_path.name) != (archive.file_name, archive.manifest_name):
        raise ArchiveRefused(f"{file_path} is not the registered archive's file")
    if _month_rows(ledger, month):
        raise ArchiveRefused(
            f"the {ledger} ledger holds rows of {month:%Y-%m} already: not restored"
        )
    if archive.sha256 != manifest.get("sha256"):
        raise ArchiveRefused(f"{manifest_path} is not the registered archive's manifest")
    if problems := list(_file_problems(archive, file_path.parent)):
        raise ArchiveRefused(f"the archive does not verify: {'; '.join(problems)}")
    table = _table(ledger)
    lower, upper = month_bounds(month)
    copy_in = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns(ledger)))
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL TimeZone = 'UTC'")
        cursor.execute("SELECT history_ledger_archive_restore(%s)", [archive.pk])
        with cursor.cursor.copy(copy_in) as copy, gzip.open(file_path, "rb") as data:
            while chunk := data.read(1 << 20):
                copy.write(chunk)
        _fault("restore_copied")
        cursor.execute(_STATS.format(table), [lower, upper])
        rows, first, last, digest = cursor.fetchone()
        if (rows, first, last, bytes(digest)) != (
            manifest["rows"],
            manifest["first_id"],
            manifest["last_id"],
            bytes.fromhex(manifest["rows_digest"]),
        ):
            raise ArchiveRefused(
                f"the restored rows ({rows}, ids {first} to {last}) are not the manifest's: "
                "rolled back"
            )
    archive.refresh_from_db()
    return archive


def _month_rows(ledger: str, month: date) -> bool:
    lower, upper = month_bounds(month)
    return LEDGERS[ledger].objects.filter(occurred_at__gte=lower, occurred_at__lt=upper).exists()
