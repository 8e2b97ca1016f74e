"""`make bench-audit`: what the tamper-evident ledger costs (issue 11, item 7).

A benchmark, not a test: it prints a table, each figure next to a reference measured in the
same run, and writes bench/results/audit-<timestamp>.json. See bench/README.md. In one run,
on its own database (`ordertrack_bench_audit`; BENCH_AUDIT_DATABASE_URL overrides it), under
config.settings.bench, in-process unless said otherwise:

1. chain cost: `orders.services.order_adjust` (single) and `order_adjustments_bulk` (1,000
   commands) with the chain as it is, against the same calls with the recorder's hashing
   replaced by a constant (`history.recorder.order_entry_hash` / `stock_entry_hash`
   monkeypatched here, in this process only), alternated over several rounds;
2. `ledger_seal()` over 100,000 new ledger rows, against `SELECT hash` of those rows;
3. verify_ledger's chain and seal checks (`order_chain_problems`, `stock_chain_problems`,
   `seal_problems`), against a plain streamed read of the same rows;
4. `order_as_of` for an order with 10,000 ledger entries, against reading its rows;
5. the CSV export `GET /api/v1/adjustments/?format=csv` of 100k, 300k and 1M rows from
   gunicorn (production settings, one worker, restarted for each size): rows/s and the
   worker's peak RSS, against `COPY (SELECT ...) TO STDOUT` of the same rows.

Every ledger row is written by the real recorder (bulk commands of 1,000 items), so every
hash is real; the database is emptied at the start (and after step 1, whose unchained rows
carry a constant hash) and, unless --keep, at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from bench.seed import CATALOGUE_SQL, DATA_TABLES, TRACKED, UNTRACKED

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ordertrack_bench_audit"
REDIS_DB = 11
CACHE_PREFIX = "ordertrack-bench-audit"

ORDERS = 10_000  # ids 1..ORDERS, one line each on an untracked product
AS_OF_ENTRIES = 10_000
BULK = 1_000
FIXED_HASH = bytes(range(32))


SEED_SQL = [
    *CATALOGUE_SQL,
    """INSERT INTO inventory_stocklevel (product_id, location_id, on_hand, reserved, in_transit,
                                         backorder, reorder_point, safety_stock, is_low,
                                         version, updated_at)
       SELECT p.id, l.id, 0, 0, 0, 0, 0, 0, false, 0, now()
       FROM inventory_product p CROSS JOIN inventory_location l
       WHERE p.track_inventory ORDER BY p.id""",
    """INSERT INTO orders_customer (name, email, created_at)
       VALUES ('Bench customer', 'customer@bench.invalid', now())""",
    # Orders 1..ORDERS with no ledger row yet: their chains start at the genesis value with
    # the first adjustment (order_create would cost ~30 s for 10,000 orders).
    f"""INSERT INTO orders_order (customer_id, reference, status, version, created_at,
                                  updated_at)
        SELECT 1, 'BENCH-' || i, 'open', 1, now(), now()
        FROM generate_series(1, {ORDERS}) AS i ORDER BY i""",
    f"""INSERT INTO orders_orderline (order_id, product_id, quantity)
        SELECT i, 1 + i % {UNTRACKED}, 500 FROM generate_series(1, {ORDERS}) AS i ORDER BY i""",
]


def sku_of(order_id: int) -> str:
    return f"BENCH-U-{order_id % UNTRACKED:03d}"


def database_url() -> str:
    return os.environ.get("BENCH_AUDIT_DATABASE_URL", DEFAULT_DATABASE_URL)


def configure() -> None:
    """config.settings.bench on the audit benchmark's database, with a signing key of this
    run's (so no key file is written or read)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    os.environ["BENCH_DATABASE_URL"] = database_url()
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.bench"
    os.environ["LEDGER_SIGNING_KEY"] = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _sql(statement: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def _one(statement: str, params=None):
    return _sql(statement, params)[0][0]


def empty() -> None:
    from django.db import connection, transaction

    with transaction.atomic():
        # The ledgers refuse TRUNCATE (history migration 0012); the bench connects as the
        # superuser, who alone may switch the triggers off, and only for the TRUNCATE.
        _sql("SET LOCAL session_replication_role = replica")
        _sql(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")
        _sql("SET LOCAL session_replication_role = origin")
    connection.close()


def reset() -> None:
    """Empty the data tables and seed products, stock levels and orders (no ledger rows)."""
    from django.db import connection, transaction

    empty()
    with transaction.atomic():
        for statement in SEED_SQL:
            _sql(statement)
    with connection.cursor() as cursor:
        for table in DATA_TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")


AUDIT_KW = {"actor": "bench-audit", "reason": "benchmark", "correlation_id": ""}


def audit():
    from history.audit import Audit
    from history.models import Source

    return Audit(source=Source.API, **AUDIT_KW)


def bulk_commands(
    rng: random.Random, *, order_id: int | None = None, sku: str = "", items: int = BULK
):
    """`items` commands of ±1 on distinct random orders (or all on `order_id`'s `sku`
    line, +1 and -1 in turn)."""
    from orders.planner import LineRequest, OrderCommand

    if order_id is not None:
        return [
            OrderCommand(order_id, [LineRequest(sku, delta=1 - 2 * (n % 2))]) for n in range(items)
        ]
    return [
        OrderCommand(o, [LineRequest(sku_of(o), delta=rng.choice((1, -1)))])
        for o in rng.sample(range(1, ORDERS + 1), items)
    ]


def bulk_run(commands) -> None:
    from orders.planner import OutcomeStatus
    from orders.services import order_adjustments_bulk

    outcomes = order_adjustments_bulk(commands=commands, atomic=False, audit=audit())
    refused = sum(1 for o in outcomes if o.status == OutcomeStatus.REFUSED)
    if refused:
        raise RuntimeError(f"{refused} of {len(outcomes)} bulk items refused: {outcomes[0]}")


def order_rows() -> int:
    return _one("SELECT count(*) FROM history_orderledgerentry")


def stock_rows() -> int:
    return _one("SELECT count(*) FROM history_stockledgerentry")


def fill_orders(until_rows: int, rng: random.Random, label: str) -> dict:
    """Bulk commands of 1,000 items until the order ledger holds `until_rows` rows; an odd
    remainder goes first, so the last rows come in whole batches of 1,000."""
    have = order_rows()
    missing = until_rows - have
    started = time.perf_counter()
    batches = 0
    first = missing % BULK
    sizes = ([first] if first else []) + [BULK] * (missing // BULK)
    for n, size in enumerate(sizes):
        bulk_run(bulk_commands(rng, items=size))
        batches += 1
        if n and n % 100 == 0:
            done = sum(sizes[: n + 1])
            rate = done / (time.perf_counter() - started)
            print(f"  {label}: {have + done:,} rows ({rate:,.0f} rows/s)", flush=True)
    seconds = time.perf_counter() - started
    assert order_rows() == until_rows
    return {"rows": missing, "batches": batches, "seconds": seconds}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.2f} ms"


# --- 1. The chain's cost on a write --------------------------------------------------------------


def chain_cost(args, rng: random.Random) -> list[dict]:
    """Single adjustments and 1,000-item bulks, chained and with a constant hash, alternated."""
    import history.recorder as recorder
    from orders.services import order_adjust

    real = (recorder.order_entry_hash, recorder.stock_entry_hash)

    def constant(prev_hash, row):
        return FIXED_HASH

    def use(variant: str) -> None:
        if variant == "chained":
            recorder.order_entry_hash, recorder.stock_entry_hash = real
        else:
            recorder.order_entry_hash = recorder.stock_entry_hash = constant

    def singles(n: int) -> float:
        ids = [rng.randint(1, ORDERS) for _ in range(n)]
        the_audit = audit()
        started = time.perf_counter()
        for order_id in ids:
            order_adjust(
                order_id=order_id, deltas={sku_of(order_id): rng.choice((1, -1))}, audit=the_audit
            )
        return (time.perf_counter() - started) / n

    def bulks(n: int) -> float:
        batches = [bulk_commands(rng) for _ in range(n)]
        started = time.perf_counter()
        for commands in batches:
            bulk_run(commands)
        return (time.perf_counter() - started) / n

    times = {(kind, v): [] for kind in ("single", "bulk") for v in ("chained", "unchained")}
    try:
        for variant in ("chained", "unchained"):  # warm-up: prepared statements, caches
            use(variant)
            singles(50)
            bulks(2)
        for r in range(args.rounds):
            order = ("chained", "unchained") if r % 2 == 0 else ("unchained", "chained")
            for variant in order:
                use(variant)
                times["single", variant].append(singles(args.singles))
                times["bulk", variant].append(bulks(args.bulks))
            print(
                f"  round {r + 1}: single "
                f"{times['single', 'chained'][-1] * 1e3:.3f} / "
                f"{times['single', 'unchained'][-1] * 1e3:.3f} ms, bulk "
                f"{times['bulk', 'chained'][-1] * 1e3:.1f} / "
                f"{times['bulk', 'unchained'][-1] * 1e3:.1f} ms (chained / constant)",
                flush=True,
            )
    finally:
        use("chained")
    # The hashing alone, for scale: the recorder's call on a representative row.
    from history.chain import GENESIS, order_entry_hash

    row = {
        "event_id": "0f0e0d0c-0b0a-4908-8706-050403020100",
        "order_id": 1234,
        "version": 57,
        "event_type": "order.quantity_adjusted",
        "sku": "BENCH-U-034",
        "delta": -1,
        "quantity_before": 501,
        "quantity_after": 500,
        "actor": "bench-audit",
        "source": "api",
        "reason_code": "unspecified",
        "reason": "benchmark",
        "occurred_at": datetime.now(UTC),
        "correlation_id": "",
        "idempotency_key": "",
    }
    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        order_entry_hash(GENESIS, row)
    per_hash = (time.perf_counter() - started) / n
    results = []
    for kind, what, per in (
        ("single", "order_adjust, 1 row", args.singles),
        ("bulk", f"order_adjustments_bulk, {BULK:,} rows", args.bulks),
    ):
        chained = statistics.median(times[kind, "chained"])
        constant_ = statistics.median(times[kind, "unchained"])
        results.append(
            {
                "kind": kind,
                "what": what,
                "ops_per_round": per,
                "rounds": args.rounds,
                "chained_s": chained,
                "unchained_s": constant_,
                "ratio": chained / constant_,
                "chained_rounds_s": times[kind, "chained"],
                "unchained_rounds_s": times[kind, "unchained"],
            }
        )
    results.append({"kind": "hash", "per_hash_s": per_hash})
    return results


# --- 2. Sealing ----------------------------------------------------------------------------------


class _Rollback(Exception):
    pass


def seal_time(args) -> dict:
    """ledger_seal() over the rows added since the last seal: timed in rolled-back
    transactions, alternating with the reference read, then once for real."""
    from django.db import connection, transaction

    from history.seals import ledger_seal

    last_sealed = args._last_sealed_id
    new_rows = _one("SELECT count(*) FROM history_orderledgerentry WHERE id > %s", [last_sealed])
    new_stock = _one(
        "SELECT count(*) FROM history_stockledgerentry WHERE id > %s", [args._last_sealed_stock]
    )

    def reference() -> float:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT hash FROM history_orderledgerentry WHERE id > %s ORDER BY id",
                [last_sealed],
            )
            hashes = [bytes(row[0]) for row in cursor.fetchall()]
            cursor.execute(
                "SELECT hash FROM history_stockledgerentry WHERE id > %s ORDER BY id",
                [args._last_sealed_stock],
            )
            hashes += [bytes(row[0]) for row in cursor.fetchall()]
        assert len(hashes) == new_rows + new_stock
        return time.perf_counter() - started

    def sealed(commit: bool) -> float:
        started = time.perf_counter()
        try:
            with transaction.atomic():
                seal = ledger_seal()
                elapsed = time.perf_counter() - started
                assert seal is not None and seal.batch_size == new_rows + new_stock, seal
                if not commit:
                    raise _Rollback
        except _Rollback:
            pass
        return elapsed

    refs, seals = [], []
    reference(), sealed(commit=False)  # warm-up, not counted
    for _ in range(args.seal_rounds):
        refs.append(reference())
        seals.append(sealed(commit=False))
    committed = sealed(commit=True)
    return {
        "rows": new_rows + new_stock,
        "seal_s": statistics.median(seals),
        "seal_rounds_s": seals,
        "seal_committed_s": committed,
        "reference_s": statistics.median(refs),
        "reference_rounds_s": refs,
    }


# --- 3. verify_ledger's checks -------------------------------------------------------------------

ORDER_READ = (
    "SELECT id, order_id, prev_hash, hash, event_id, version, event_type, sku, delta, "
    "quantity_before, quantity_after, actor, source, reason_code, reason, occurred_at, "
    "correlation_id, idempotency_key FROM history_orderledgerentry ORDER BY order_id, id"
)
STOCK_READ = (
    "SELECT id, product_id, location_id, prev_hash, hash, event_id, sku, location_code, "
    "version, movement, delta_on_hand, delta_reserved, delta_in_transit, delta_backorder, "
    "on_hand_after, reserved_after, in_transit_after, backorder_after, reference_type, "
    "reference_id, actor, source, reason_code, reason, occurred_at, correlation_id, "
    "idempotency_key FROM history_stockledgerentry ORDER BY product_id, location_id, id"
)
SEAL_READ = (
    "SELECT hash FROM history_orderledgerentry UNION ALL SELECT hash FROM history_stockledgerentry"
)


def streamed_read(sql: str) -> tuple[int, float]:
    """Rows and seconds of a server-side cursor over `sql`, 2,000 rows a fetch (as the
    selectors' .iterator(2000))."""
    from django.db import connection, transaction

    started = time.perf_counter()
    rows = 0
    with transaction.atomic():
        connection.ensure_connection()
        with connection.connection.cursor(name=f"bench_{secrets.token_hex(4)}") as cursor:
            cursor.itersize = 2000
            cursor.execute(sql)
            for _ in cursor:
                rows += 1
    return rows, time.perf_counter() - started


def verify_throughput(args) -> list[dict]:
    from history.models import LedgerSeal
    from history.seals import seal_problems
    from inventory.selectors import stock_chain_problems
    from orders.selectors import order_chain_problems

    sealed = sum(LedgerSeal.objects.values_list("batch_size", flat=True))
    checks = [
        ("order chains", "order_chain_problems()", order_chain_problems, ORDER_READ),
        ("stock chains", "stock_chain_problems()", stock_chain_problems, STOCK_READ),
        ("seals", "seal_problems()", seal_problems, SEAL_READ),
    ]
    results = []
    for name, call, check, reference_sql in checks:
        times, refs, problems, rows = [], [], None, None
        for _ in range(args.verify_rounds):
            rows, seconds = streamed_read(reference_sql)
            refs.append(seconds)
            started = time.perf_counter()
            problems = list(check())
            times.append(time.perf_counter() - started)
        if name == "seals":
            assert rows == sealed, (rows, sealed)
        results.append(
            {
                "name": name,
                "call": call,
                "rows": rows,
                "check_s": statistics.median(times),
                "check_rounds_s": times,
                "reference_s": statistics.median(refs),
                "reference_rounds_s": refs,
                "problems": len(problems),
                "first_problems": [str(p) for p in problems[:3]],
            }
        )
    return results


# --- 4. as_of ------------------------------------------------------------------------------------


# What order_replay uses of a row.
REPLAY_COLUMNS = "version, sku, quantity_before, quantity_after, occurred_at, event_type"


def as_of_time(args, order_id: int) -> dict:
    from django.db import connection

    from history.selectors import order_as_of

    at = datetime.now(UTC)
    entries = _one("SELECT count(*) FROM history_orderledgerentry WHERE order_id = %s", [order_id])
    calls, refs, lean = [], [], []
    state = None

    def read(columns: str) -> tuple[list, float]:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns} FROM history_orderledgerentry"
                " WHERE order_id = %s AND occurred_at <= %s ORDER BY version, id",
                [order_id, at],
            )
            rows = cursor.fetchall()
        return rows, time.perf_counter() - started

    for n in range(args.as_of_calls + 2):
        rows, ref = read("*")  # every column, as the ORM reads them
        _, lean_ref = read(REPLAY_COLUMNS)
        started = time.perf_counter()
        state = order_as_of(order_id=order_id, at=at)
        call = time.perf_counter() - started
        if n >= 2:  # two warm-up rounds
            refs.append(ref)
            lean.append(lean_ref)
            calls.append(call)
    read = rows
    assert len(read) == entries and state is not None and state.version == entries, (
        len(read),
        entries,
        state and state.version,
    )
    return {
        "order_id": order_id,
        "entries": entries,
        "calls": len(calls),
        "as_of_s": statistics.median(calls),
        "as_of_p90_s": sorted(calls)[int(len(calls) * 0.9) - 1],
        "reference_s": statistics.median(refs),
        "reference_replay_columns_s": statistics.median(lean),
        "problems": len(state.problems),
    }


# --- 5. The CSV export ---------------------------------------------------------------------------

CSV_SQL_COLUMNS = (
    "id, event_id, order_id, version, event_type, sku, delta, quantity_before, quantity_after, "
    "actor, source, reason, reason_code, occurred_at, correlation_id, idempotency_key, "
    "encode(prev_hash, 'hex'), encode(hash, 'hex')"
)


def _worker_pid(master: int) -> int:
    """The one worker of a gunicorn master: the process whose parent it is."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == master:
                    return int(proc.name)
    raise RuntimeError(f"gunicorn {master} has no worker")


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Server:
    """gunicorn, production settings, one gthread worker with 4 threads, on a free port."""

    def __init__(self, env: dict[str, str]):
        from bench.load import _free_port

        self.env = env
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.logs = ROOT / "var" / "bench-logs"

    def __enter__(self) -> Server:
        from bench.load import VENV_BIN, _get_json

        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / "audit-gunicorn.log").open("a")
        argv = [
            str(VENV_BIN / "gunicorn"), "--config", str(ROOT / "config" / "gunicorn.py"),
            "config.wsgi:application", "--bind", f"127.0.0.1:{self.port}", "--workers", "1",
            "--worker-class", "gthread", "--threads", "4", "--log-level", "warning",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.logs / 'audit-gunicorn.log'}")
            with contextlib.suppress(OSError):
                status, _ = _get_json(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                if status == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not answer /healthz within 60 s")
        self.worker = _worker_pid(self.proc.pid)
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def export(self, token: str, query: str) -> dict:
        """GET the CSV, read it in 64 KiB chunks and discard it: rows, bytes, seconds."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        started = time.perf_counter()
        connection.request(
            "GET",
            f"/api/v1/adjustments/?format=csv{query}",
            headers={"Authorization": f"Token {token}", "Accept": "text/csv"},
        )
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"export answered {response.status}: {response.read()[:500]!r}")
        lines = size = 0
        while chunk := response.read(65536):
            lines += chunk.count(b"\n")
            size += len(chunk)
        seconds = time.perf_counter() - started
        connection.close()
        return {"rows": lines - 1, "bytes": size, "seconds": seconds}


def copy_reference(where: str, params: list) -> dict:
    """`COPY (SELECT the export's columns ... ORDER BY id) TO STDOUT` through psycopg."""
    from django.conf import settings

    from bench import postgres

    db = settings.DATABASES["default"]
    with postgres.connect(db, db["NAME"], autocommit=False) as conn:
        started = time.perf_counter()
        lines = size = 0
        sql = (
            f"COPY (SELECT {CSV_SQL_COLUMNS} FROM history_orderledgerentry {where} ORDER BY id) "
            "TO STDOUT (FORMAT csv, HEADER)"
        )
        with conn.cursor() as cursor, cursor.copy(sql, params) as copy:
            for block in copy:
                lines += bytes(block).count(b"\n")
                size += len(block)
        return {"rows": lines - 1, "bytes": size, "seconds": time.perf_counter() - started}


def export_sizes(args, token: str) -> list[dict]:
    from bench.load import production_env

    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-audit-prometheus-")
    )
    env = production_env(SimpleNamespace(amqp_url=args.amqp_url), database_url())
    env.update(
        {
            "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "CACHE_KEY_PREFIX": CACHE_PREFIX,
            "EVENT_EXCHANGE": "ordertrack-bench-audit.events",
            # An auditor may export 60 times an hour; a few runs in a row stay far below it,
            # but the limit is raised (not switched off) so that a rerun never meets it.
            "THROTTLE_CSV_EXPORT": "100000/hour",
            "THROTTLE_AUDITOR": "100000/minute",
        }
    )
    total = order_rows()
    results = []
    for size in args.export_sizes:
        if size >= total:
            where, params, query, size = "", [], "", total
        else:
            # The last `size` rows: from the first row of the batch they start with (the
            # last rows come in whole batches of 1,000, one occurred_at each).
            since = _one(
                "SELECT occurred_at FROM history_orderledgerentry ORDER BY id DESC "
                "OFFSET %s LIMIT 1",
                [size - 1],
            )
            where, params = "WHERE occurred_at >= %s", [since]
            query = "&since=" + urllib.parse.quote(since.astimezone(UTC).isoformat())
        expected = _one(f"SELECT count(*) FROM history_orderledgerentry {where}", params)
        copied = copy_reference(where, params)
        with Server(env) as server:
            # One small export first, so the worker has loaded what any export needs.
            server.export(token, "&order=1")
            before = _status_kib(server.worker, "VmHWM")
            exported = server.export(token, query)
            peak = _status_kib(server.worker, "VmHWM")
            rss_after = _status_kib(server.worker, "VmRSS")
        assert exported["rows"] == expected == copied["rows"], (exported, expected, copied)
        results.append(
            {
                "rows": expected,
                "filter": query or "(none)",
                "export": exported,
                "copy": copied,
                "worker_hwm_before_kib": before,
                "worker_hwm_kib": peak,
                "worker_rss_after_kib": rss_after,
            }
        )
        print(
            f"  {expected:,} rows: export {exported['seconds']:.1f} s, COPY "
            f"{copied['seconds']:.1f} s, worker peak RSS {peak / 1024:.0f} MiB",
            flush=True,
        )
    return results


def auditor_token() -> str:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command(
        "issue_token", "bench-auditor", role="auditor", name="bench-audit", days=1, stdout=out
    )
    return out.getvalue().strip().splitlines()[-1]


def clear_redis_keys() -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    for key in client.scan_iter(match=f"{CACHE_PREFIX}:*", count=1000):
        client.delete(key)
    client.close()


# --- The table -----------------------------------------------------------------------------------


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s"


def table(run: dict) -> str:
    lines = []
    header = ("measurement", "rows", "figure", "reference", "ref. figure", "ratio")
    out = []
    for item in run["chain"]:
        if item["kind"] == "hash":
            continue
        out.append(
            (
                f"chain: {item['what']} (median of {item['rounds']} rounds)",
                f"{1 if item['kind'] == 'single' else BULK:,}",
                _ms(item["chained_s"]) + " per op",
                "same, constant hash",
                _ms(item["unchained_s"]) + " per op",
                f"{item['ratio']:.3f}",
            )
        )
    seal = run["seal"]
    out.append(
        (
            f"ledger_seal() (median of {len(seal['seal_rounds_s'])}, rolled back)",
            f"{seal['rows']:,}",
            _rate(seal["rows"], seal["seal_s"]),
            "SELECT hash of those rows",
            _rate(seal["rows"], seal["reference_s"]),
            f"{seal['seal_s'] / seal['reference_s']:.2f}",
        )
    )
    out.append(
        (
            "ledger_seal(), committed",
            f"{seal['rows']:,}",
            _rate(seal["rows"], seal["seal_committed_s"]),
            "",
            "",
            f"{seal['seal_committed_s'] / seal['reference_s']:.2f}",
        )
    )
    for item in run["verify"]:
        out.append(
            (
                f"verify: {item['call']}"
                + (f" {item['problems']} PROBLEMS" if item["problems"] else ""),
                f"{item['rows']:,}",
                _rate(item["rows"], item["check_s"]),
                "streamed read, same rows",
                _rate(item["rows"], item["reference_s"]),
                f"{item['check_s'] / item['reference_s']:.2f}",
            )
        )
    as_of = run["as_of"]
    out.append(
        (
            f"order_as_of, {as_of['entries']:,} entries (median of {as_of['calls']})",
            f"{as_of['entries']:,}",
            _ms(as_of["as_of_s"]),
            "SELECT the order's rows",
            _ms(as_of["reference_s"]),
            f"{as_of['as_of_s'] / as_of['reference_s']:.2f}",
        )
    )
    out.append(
        (
            "",
            "",
            "",
            "same, the 6 columns replay uses",
            _ms(as_of["reference_replay_columns_s"]),
            f"{as_of['as_of_s'] / as_of['reference_replay_columns_s']:.2f}",
        )
    )
    for item in run["export"]:
        out.append(
            (
                "CSV export, gunicorn (worker peak RSS "
                f"{item['worker_hwm_kib'] / 1024:,.0f} MiB, "
                f"{item['worker_hwm_before_kib'] / 1024:,.0f} before)",
                f"{item['rows']:,}",
                _rate(item["rows"], item["export"]["seconds"]),
                "COPY ... TO STDOUT",
                _rate(item["rows"], item["copy"]["seconds"]),
                f"{item['export']['seconds'] / item['copy']['seconds']:.2f}",
            )
        )
    widths = [max(len(str(r[i])) for r in [header, *out]) for i in range(len(header))]
    lines.append(
        "  ".join(
            h.ljust(w) if i in (0, 3) else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    lines.append("  ".join("-" * w for w in widths))
    for row in out:
        lines.append(
            "  ".join(
                str(c).ljust(w) if i in (0, 3) else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="A/B rounds of the chain cost")
    parser.add_argument("--singles", type=int, default=400, help="order_adjust calls per round")
    parser.add_argument("--bulks", type=int, default=5, help="1,000-item bulks per round")
    parser.add_argument("--seal-rows", type=int, default=100_000)
    parser.add_argument("--seal-rounds", type=int, default=3)
    parser.add_argument("--verify-rounds", type=int, default=2)
    parser.add_argument("--stock-receipts", type=int, default=200, help="per stock level")
    parser.add_argument("--as-of-calls", type=int, default=20)
    parser.add_argument(
        "--export-sizes",
        default="100000,300000,1000000",
        help="comma-separated row counts; the largest is the order ledger's size",
    )
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--keep", action="store_true", help="leave the rows in the database")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    args.export_sizes = sorted(int(s) for s in args.export_sizes.split(",") if s)

    from scripts.check_services import missing_services

    problems = missing_services()
    if problems:
        for problem in problems:
            print(f"ERROR: {problem}", file=sys.stderr)
        return 1

    configure()
    import django

    django.setup()
    from django.conf import settings

    from bench.relay import ensure_database
    from history.audit import Audit
    from history.models import Source
    from history.seals import ledger_seal
    from inventory.services import stock_receive
    from orders.services import order_create

    rng = random.Random(args.seed)
    run_started = time.perf_counter()
    began = datetime.now(UTC)
    print("preparing the benchmark database ...", flush=True)
    database = ensure_database()
    with contextlib.suppress(Exception):
        clear_redis_keys()
    facts = {
        "database": database,
        "nproc": len(os.sched_getaffinity(0)),
        "postgresql": _one("SHOW server_version"),
        "python": platform.python_version(),
        "django": django.get_version(),
        "load_average_start": os.getloadavg(),
        "prepared_statements": bool(
            settings.DATABASES["default"].get("OPTIONS", {}).get("prepare_threshold")
        ),
    }
    print(
        f"database {database}, nproc={facts['nproc']}, PostgreSQL {facts['postgresql']}, "
        f"Python {facts['python']}, load average {facts['load_average_start'][0]:.2f}",
        flush=True,
    )
    run: dict = {"facts": facts, "args": {k: v for k, v in vars(args).items()}}
    try:
        reset()
        print(
            f"1. chain cost: {args.rounds} rounds of {args.singles} order_adjust and "
            f"{args.bulks} bulks of {BULK:,}, chained / constant hash, alternated ...",
            flush=True,
        )
        run["chain"] = chain_cost(args, rng)

        print("reseeding (the constant-hash rows would break the chains) ...", flush=True)
        reset()
        the_audit = Audit(source=Source.SYSTEM, reason_code="correction", **AUDIT_KW)
        started = time.perf_counter()
        for _ in range(args.stock_receipts):
            for p in range(TRACKED):
                stock_receive(sku=f"BENCH-T-{p:02d}", location="BENCH-WH", quantity=10,
                              audit=the_audit)  # fmt: skip
        created = order_create(
            customer_id=1, reference="BENCH-AS-OF", lines={sku_of(0): 500}, audit=audit()
        )
        for _ in range(AS_OF_ENTRIES // BULK):
            bulk_run(bulk_commands(rng, order_id=created.id, sku=sku_of(0)))
        print(
            f"  {stock_rows():,} stock ledger rows (stock_receive), order {created.id} with "
            f"{AS_OF_ENTRIES + 1:,} entries ({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        ledger_seal()  # what exists so far; the next seal takes only the new rows
        args._last_sealed_id = _one("SELECT max(id) FROM history_orderledgerentry")
        args._last_sealed_stock = _one("SELECT max(id) FROM history_stockledgerentry")

        print(f"2. {args.seal_rows:,} new ledger rows, then ledger_seal() ...", flush=True)
        run["fill_seal"] = fill_orders(order_rows() + args.seal_rows, rng, "filling")
        _sql("VACUUM ANALYZE history_orderledgerentry")
        run["seal"] = seal_time(args)

        print(
            f"3. verify_ledger's checks over {order_rows():,} order and {stock_rows():,} "
            "stock ledger rows ...",
            flush=True,
        )
        run["verify"] = verify_throughput(args)

        print(f"4. order_as_of, order {created.id} ...", flush=True)
        run["as_of"] = as_of_time(args, created.id)

        largest = args.export_sizes[-1]
        print(f"5. filling the order ledger to {largest:,} rows ...", flush=True)
        run["fill_export"] = fill_orders(largest, rng, "filling")
        fill = run["fill_export"]
        print(
            f"  {fill['rows']:,} rows in {fill['seconds']:.0f} s "
            f"({fill['rows'] / fill['seconds']:,.0f} rows/s through order_adjustments_bulk)",
            flush=True,
        )
        _sql("VACUUM ANALYZE history_orderledgerentry")
        token = auditor_token()
        print("  exports (gunicorn restarted for each size) ...", flush=True)
        run["export"] = export_sizes(args, token)
    finally:
        if not args.keep:
            print("emptying the benchmark database ...", flush=True)
            with contextlib.suppress(Exception):
                empty()
        with contextlib.suppress(Exception):
            clear_redis_keys()

    per_hash = next(i for i in run["chain"] if i["kind"] == "hash")["per_hash_s"]
    print()
    print(
        f"bench-audit {began:%Y-%m-%d %H:%M} UTC, {time.perf_counter() - run_started:.0f} s, "
        f"load average now {os.getloadavg()[0]:.2f}"
    )
    print(table(run))
    print(
        f"order_entry_hash alone: {per_hash * 1e6:.1f} µs per row; as_of goal < 50 ms: "
        + ("met" if run["as_of"]["as_of_s"] < 0.050 else "NOT MET")
        + f" ({run['as_of']['as_of_s'] * 1e3:.1f} ms median, "
        f"p90 {run['as_of']['as_of_p90_s'] * 1e3:.1f} ms)"
    )
    fills = [run["fill_seal"], run["fill_export"]]
    rows = sum(f["rows"] for f in fills)
    print(
        f"ledger rows written through order_adjustments_bulk: {rows:,} in "
        f"{sum(f['seconds'] for f in fills):.0f} s; ratios: figure time / reference time "
        "(chain: chained / constant hash)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"audit-{began:%Y%m%dT%H%M%SZ}.json"
    run["facts"]["load_average_end"] = os.getloadavg()
    path.write_text(json.dumps(run, indent=2, default=str))
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
