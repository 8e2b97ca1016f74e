"""`make bench-scale`: do the product's reads and writes stay flat as the ledger grows?

A benchmark, not a test (issue 13, part 5). On its own database (`ordertrack_bench_scale`;
BENCH_SCALE_DATABASE_URL overrides it), created and migrated here and dropped at the end
unless --keep, under config.settings.bench, in-process:

1. the order ledger is filled to the first size (default 1, 10 and 30 million rows), then
   measured, then grown to the next size and measured again, and so on. Rows are spread
   over the 36 months ending this month (a partition each, made by
   `history_partitions_ensure`). Each fill adds new orders (1-3 lines, a mean of --versions
   versions each, their versions spread over a lifetime of up to 180 days) and LONG_ORDERS
   orders of LONG_VERSIONS versions over the whole 36 months only in the first fill (the
   history pages and as_of read those, so they read the same shape at every size). Every
   order's row, version and lines match its ledger's last row (`quantity_after`, version):
   the services build on real state. The rows go in with COPY (into a staging table, then
   in time order into the ledger, partition after partition); `prev_hash` and `hash` are a
   constant placeholder (as is every order's `ledger_head`): hashing 30 million rows in
   Python would take longer than the fill, and no measured operation checks a chain
   (verify_ledger would report them all). `txid` is the fill transaction's.
2. the outbox holds what a deployment with the default retention (OUTBOX_RETENTION_DAYS=7)
   holds: the events of this month and of the last month that ended more than 7 days ago
   and has not been dropped yet (one published event per order version, as the recorder
   writes them), plus the events the measured writes leave pending (the relay claims
   those). The older months' outbox partitions are dropped before measuring. The stock
   ledger stays empty: no measured operation reads it (the orders are on untracked
   products).
3. at each size: `order_adjust` (single write p50 / p99), `order_adjustments_bulk` (1,000
   commands on distinct orders, rows/s), the first and a deep page of an order's history
   and of the adjustments feed (GET through the WSGI application, p50), `order_as_of`
   (p50), the adjustments CSV export of --export-rows rows (the streaming view through the
   WSGI application, rows/s), the relay's claim of a batch (history.relay `_claim` and
   `_in_aggregate_order`, the first two steps of `outbox_relay_batch`, rolled back; p50),
   `partitions_ensure` (the beat's call, nothing to create, p50; and once creating a month
   for each of the three tables) and `outbox_published_purge` dropping one month.

It prints each figure at each size and its ratio to the first size's (a cost ratio: time
over time, or the first rate over this one, so above 1 is worse), marks those above 1.5,
and writes bench/results/scale-<timestamp>.json and .png (the ratios against ledger rows).

    make bench-scale                                   # 1, 10, 30 million rows
    make bench-scale BENCH_ARGS='--sizes 0.1,0.3'      # a quick try

With --ab URL_A,URL_B it fills nothing: it measures two databases that --keep runs left, in
turn (A, B, B, A, A, B, ... --rounds times each), so that both sizes share the machine's
load, and prints the medians' ratios (bench/results/scale-ab-<timestamp>.json).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ordertrack_bench_scale"
CPUINFO = Path("/proc/cpuinfo")

MONTHS = 36
UNTRACKED = 50  # BENCH-U-000 .. BENCH-U-049 (bench.seed.CATALOGUE_SQL)
LONG_ORDERS = 4
LONG_VERSIONS = 10_000
LIFETIME_DAYS = 180
RETENTION_DAYS = 7  # the default OUTBOX_RETENTION_DAYS
FLAT = 1.5  # the goal: no figure at the largest size worse than 1.5 times the first size's
PLACEHOLDER_HASH = bytes.fromhex("be" * 32)  # prev_hash, hash and ledger_head of filled rows
DELTAS = (-5, -3, -2, -1, -1, 1, 1, 2, 3, 5)


def database_url() -> str:
    return os.environ.get("BENCH_SCALE_DATABASE_URL", DEFAULT_DATABASE_URL)


def configure() -> None:
    """config.settings.bench on the scale benchmark's database, with no Redis (the
    in-process cache and throttles are local), a signing key of this run's, and export
    throttles raised so that repeated exports never meet them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    os.environ["BENCH_DATABASE_URL"] = database_url()
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.bench"
    os.environ["REDIS_URL"] = ""
    os.environ["THROTTLE_CSV_EXPORT"] = "100000/hour"
    os.environ["THROTTLE_AUDITOR"] = "100000/minute"
    os.environ["LEDGER_SIGNING_KEY"] = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-scale-prometheus-")
    )


def _sql(statement: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def _one(statement: str, params=None):
    return _sql(statement, params)[0][0]


def _admin_connect(dbname: str = "postgres"):
    from django.conf import settings

    from bench import postgres

    return postgres.connect(settings.DATABASES["default"], dbname)


def recreate_database() -> str:
    """Drop the benchmark's database if a run left it, create it and migrate it."""
    from django.conf import settings
    from django.db import connection

    from bench.relay import ensure_database

    connection.close()
    name = settings.DATABASES["default"]["NAME"]
    assert "bench" in name, f"not a benchmark database: {name}"
    with _admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return ensure_database()


def drop_database() -> None:
    from django.conf import settings
    from django.db import connection

    connection.close()
    name = settings.DATABASES["default"]["NAME"]
    assert "bench" in name, f"not a benchmark database: {name}"
    with _admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Time ----------------------------------------------------------------------------------------


def month_start(at: datetime, back: int = 0) -> datetime:
    month = at.year * 12 + at.month - 1 - back
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)


def droppable_month(now: datetime) -> datetime:
    """The latest month that ended more than RETENTION_DAYS ago: the outbox's oldest month
    in a deployment whose retention has run, and the one the measurement drops."""
    back = 1
    while month_start(now, back - 1) > now - timedelta(days=RETENTION_DAYS):
        back += 1
    return month_start(now, back)


# --- The fill ------------------------------------------------------------------------------------


class Fill:
    """Generates orders and their ledger rows (staged with COPY) up to a row count."""

    def __init__(self, args, rng: random.Random, now: datetime):
        self.args = args
        self.rng = rng
        self.start = month_start(now, MONTHS - 1).timestamp()
        # Nothing in the last hour: the measured writes come after every filled row.
        self.end = (now - timedelta(hours=1)).timestamp()
        self.products: list[int] = []  # product id of BENCH-U-nnn at index nnn
        self.long_orders: list[int] = []
        self.next_order = 1
        self.orders: dict[int, tuple[int, ...]] = {}  # order id -> its lines' product indexes

    def _order(self, oid: int, lines: int, versions: int, t0: float, lifetime: float, out):
        rng = self.rng
        picks = [(oid * 3 + k) % UNTRACKED for k in range(lines)]
        self.orders[oid] = tuple(picks)
        qty = [rng.randint(100, 900) for _ in range(lines)]
        products = self.products
        t = t0
        for k in range(lines):  # order.created: one row per line
            out.append(f"{oid}\t1\t{products[picks[k]]}\t{qty[k]}\t0\t{qty[k]}\t{t:.6f}\tt\n")
        if versions > 1:
            gaps = [0.2 + rng.random() for _ in range(versions - 1)]
            scale = lifetime / sum(gaps)  # the last version at t0 + lifetime
            for v, gap in enumerate(gaps, start=2):
                t += gap * scale
                k = rng.randrange(lines)
                delta = rng.choice(DELTAS)
                before = qty[k]
                if before + delta < 0:
                    delta = -delta
                qty[k] = before + delta
                out.append(
                    f"{oid}\t{v}\t{products[picks[k]]}\t{delta}\t{before}\t{qty[k]}\t{t:.6f}\tf\n"
                )
        return qty, t

    def generate(self, rows: int, with_long: bool):
        """Yield (chunk of staged ledger lines, chunk of staged order lines, chunk of line
        lines) until `rows` ledger rows."""
        rng = self.rng
        span = self.end - self.start
        made = 0
        ledger: list[str] = []
        orders: list[str] = []
        lines_out: list[str] = []
        mean = self.args.versions
        pending_long = LONG_ORDERS if with_long else 0
        while made < rows:
            oid = self.next_order
            self.next_order += 1
            if pending_long:
                pending_long -= 1
                lines, versions = 1, min(LONG_VERSIONS, rows - made)
                # Whole span; the last version two hours before the end.
                t0, lifetime = self.start + 3600, span - 3 * 3600
                self.long_orders.append(oid)
            else:
                lines = rng.choice((1, 2, 3))
                versions = rng.randint(2, 2 * mean - 2)
                if made + lines + versions - 1 > rows:
                    lines = 1
                    versions = max(1, rows - made)
                # Started any time; one started lately has had less time (an even spread
                # of rows over the months, not thinning towards the ends).
                t0 = self.start + rng.random() * (span - 60)
                lifetime = min(self.end - t0 - 30, rng.uniform(1, LIFETIME_DAYS) * 86400)
            qty, last = self._order(oid, lines, versions, t0, lifetime, ledger)
            made += lines + versions - 1
            orders.append(f"{oid}\t{versions}\t{t0:.6f}\t{last:.6f}\n")
            picks = self.orders[oid]
            for k in range(lines):
                lines_out.append(f"{oid}\t{self.products[picks[k]]}\t{qty[k]}\n")
            if len(ledger) >= 50_000:
                yield ledger, orders, lines_out
                ledger, orders, lines_out = [], [], []
        yield ledger, orders, lines_out


STAGE_SQL = [
    "DROP TABLE IF EXISTS bench_stage_ledger, bench_stage_orders, bench_stage_lines",
    """CREATE UNLOGGED TABLE bench_stage_ledger (order_id bigint, version integer,
        product_id bigint, delta integer, quantity_before integer, quantity_after integer,
        t double precision, created boolean)""",
    """CREATE UNLOGGED TABLE bench_stage_orders (order_id bigint, versions integer,
        t0 double precision, t1 double precision)""",
    """CREATE UNLOGGED TABLE bench_stage_lines (order_id bigint, product_id bigint,
        quantity integer)""",
]

LEDGER_INSERT = """
INSERT INTO history_orderledgerentry (event_id, order_id, product_id, sku, version, event_type,
    delta, quantity_before, quantity_after, actor, source, reason_code, reason, occurred_at,
    correlation_id, idempotency_key, prev_hash, hash)
SELECT md5(s.order_id || ':' || s.version)::uuid, s.order_id, s.product_id, p.sku, s.version,
    CASE WHEN s.created THEN 'order.created' ELSE 'order.quantity_adjusted' END,
    s.delta, s.quantity_before, s.quantity_after, 'bench-scale', 'api',
    CASE WHEN s.created THEN 'system' ELSE 'customer_request' END, 'benchmark',
    to_timestamp(s.t), '', '', %(hash)s, %(hash)s
FROM bench_stage_ledger s JOIN inventory_product p ON p.id = s.product_id
ORDER BY s.t
"""

ORDERS_INSERT = """
INSERT INTO orders_order (id, customer_id, reference, status, version, created_at, updated_at,
                          ledger_head)
SELECT order_id, 1, 'SCALE-' || order_id, 'open', versions, to_timestamp(t0), to_timestamp(t1),
       %(hash)s
FROM bench_stage_orders ORDER BY order_id
"""

LINES_INSERT = """
INSERT INTO orders_orderline (order_id, product_id, quantity)
SELECT order_id, product_id, quantity FROM bench_stage_lines ORDER BY order_id, product_id
"""

# One published event per order version, as the recorder writes it (history.events), for
# the ledger rows of [since, until) of the orders from `first_order` on.
OUTBOX_INSERT = """
INSERT INTO history_outboxevent (event_id, aggregate_type, aggregate_id, aggregate_version,
    event_type, payload, created_at, published_at, attempts, last_error)
SELECT e.event_id, 'order', e.order_id::text, e.version, min(e.event_type),
    jsonb_build_object('order_id', e.order_id, 'aggregate_version', e.version,
        'status', 'open', 'reference', 'SCALE-' || e.order_id, 'customer_id', 1,
        'changes', jsonb_agg(jsonb_build_object('sku', e.sku, 'before', e.quantity_before,
            'after', e.quantity_after, 'delta', e.delta) ORDER BY e.id),
        'actor', 'bench-scale', 'source', 'api', 'reason', 'benchmark',
        'reason_code', min(e.reason_code), 'correlation_id', '',
        'occurred_at', to_char(min(e.occurred_at) AT TIME ZONE 'UTC',
                               'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
    min(e.occurred_at), min(e.occurred_at) + interval '2 seconds', 1, ''
FROM history_orderledgerentry e
WHERE e.occurred_at >= %(since)s AND e.occurred_at < %(until)s AND e.order_id >= %(first)s
GROUP BY e.order_id, e.version, e.event_id
ORDER BY min(e.occurred_at), e.order_id
"""


def _copy(cursor, table: str, chunk: list[str]) -> None:
    if chunk:
        with cursor.copy(f"COPY {table} FROM STDIN") as copy:
            copy.write("".join(chunk))


def fill(filler: Fill, until_rows: int, now: datetime, first: bool) -> dict:
    """Grow the order ledger to `until_rows` rows (new orders), the outbox with them, then
    VACUUM ANALYZE. Returns the timings."""
    from django.db import connection, transaction

    from history.services import partitions_ensure

    have = _one("SELECT count(*) FROM history_orderledgerentry")
    rows = until_rows - have
    timings: dict = {"rows_before": have, "rows_added": rows}
    started = time.perf_counter()
    first_order = filler.next_order
    # Every month of the 36, for the three tables (the outbox's dropped months come back
    # empty and go again below), and the months ahead as the beat makes them.
    partitions_ensure(months_ahead=3, since=month_start(now, MONTHS - 1))
    connection.ensure_connection()
    with connection.cursor() as cursor:
        for statement in STAGE_SQL:
            cursor.execute(statement)
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        staged = 0
        for ledger, orders, lines in filler.generate(rows, with_long=first):
            _copy(raw, "bench_stage_ledger", ledger)
            _copy(raw, "bench_stage_orders", orders)
            _copy(raw, "bench_stage_lines", lines)
            staged += len(ledger)
            if staged // 1_000_000 != (staged - len(ledger)) // 1_000_000:
                print(
                    f"    staged {staged:,} rows ({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
    timings["generate_and_copy_s"] = time.perf_counter() - started
    step = time.perf_counter()
    with transaction.atomic():
        _sql("SET LOCAL work_mem = '1GB'")
        _sql(ORDERS_INSERT, {"hash": PLACEHOLDER_HASH})
        _sql(LINES_INSERT)
        _sql(LEDGER_INSERT, {"hash": PLACEHOLDER_HASH})
    timings["ledger_insert_s"] = time.perf_counter() - step
    print(f"    ledger rows in time order: {timings['ledger_insert_s']:.0f} s", flush=True)
    _sql(
        "SELECT setval(pg_get_serial_sequence('orders_order', 'id'), "
        "(SELECT max(id) FROM orders_order))"
    )
    step = time.perf_counter()
    drop = droppable_month(now)
    # The droppable month was dropped at the last size: all of its events again, and this
    # month's (and any month between) for the new orders only.
    keep_from = month_start(drop, -1)
    with transaction.atomic():
        _sql("SET LOCAL work_mem = '1GB'")
        _sql(OUTBOX_INSERT, {"since": drop, "until": keep_from, "first": 0})
        _sql(OUTBOX_INSERT, {"since": keep_from, "until": now, "first": first_order})
    timings["outbox_insert_s"] = time.perf_counter() - step
    # The outbox's months before the droppable one: empty, dropped as retention would.
    _sql("SELECT history_outbox_partitions_drop(%s)", [drop])
    _sql("DROP TABLE bench_stage_ledger, bench_stage_orders, bench_stage_lines")
    step = time.perf_counter()
    for table in ("history_orderledgerentry", "history_outboxevent", "orders_order",
                  "orders_orderline"):  # fmt: skip
        _sql(f"VACUUM ANALYZE {table}")
    timings["vacuum_analyze_s"] = time.perf_counter() - step
    # The fill's dirty pages written out now, not during the measurements (and every size
    # measured from a fresh checkpoint: the first change of a page after one logs all of it).
    step = time.perf_counter()
    _sql("CHECKPOINT")
    timings["checkpoint_s"] = time.perf_counter() - step
    timings["seconds"] = time.perf_counter() - started
    timings["rows_after"] = _one("SELECT count(*) FROM history_orderledgerentry")
    timings["orders_after"] = _one("SELECT count(*) FROM orders_order")
    timings["outbox_rows"] = _one("SELECT count(*) FROM history_outboxevent")
    assert timings["rows_after"] == until_rows, (timings["rows_after"], until_rows)
    return timings


def state_check(filler: Fill) -> None:
    """A sample of orders: version and line quantities equal their ledger's last rows."""
    rng = random.Random(7)
    sample = rng.sample(sorted(filler.orders), min(200, len(filler.orders)))
    rows = _sql(
        """SELECT o.id, o.version, (SELECT max(version) FROM history_orderledgerentry e
                                    WHERE e.order_id = o.id),
                  (SELECT count(*) FROM orders_orderline l WHERE l.order_id = o.id
                   AND l.quantity <> (SELECT e.quantity_after FROM history_orderledgerentry e
                                      WHERE e.order_id = o.id AND e.product_id = l.product_id
                                      ORDER BY e.version DESC LIMIT 1))
           FROM orders_order o WHERE o.id = ANY(%s)""",
        [sample],
    )
    bad = [r for r in rows if r[1] != r[2] or r[3]]
    assert not bad and len(rows) == len(sample), bad[:5]


# --- The measurements ----------------------------------------------------------------------------


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _audit():
    from history.audit import Audit
    from history.models import Source

    return Audit(source=Source.API, actor="bench-scale", reason="benchmark", correlation_id="")


def _sku(filler: Fill, oid: int) -> str:
    return f"BENCH-U-{filler.orders[oid][0]:03d}"


def _delta(rng: random.Random) -> int:
    """+1: a random walk of the fill may have left a line at 0, where -1 is refused."""
    return 1


def measure_writes(args, filler: Fill, rng: random.Random) -> dict:
    from django.db import connection, transaction

    from orders.planner import LineRequest, OrderCommand, OutcomeStatus
    from orders.services import order_adjust, order_adjustments_bulk

    ordinary = [o for o in filler.orders if o not in filler.long_orders]
    the_audit = _audit()
    for oid in rng.sample(ordinary, 20):  # warm-up
        order_adjust(order_id=oid, deltas={_sku(filler, oid): _delta(rng)}, audit=the_audit)
    times, references, in_sql = [], [], []
    spent = 0.0

    def timed(execute, sql, params, many, context):
        nonlocal spent
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent += time.perf_counter() - started

    for oid in [rng.choice(ordinary) for _ in range(args.writes)]:
        spent = 0.0
        started = time.perf_counter()
        with connection.execute_wrapper(timed):
            order_adjust(order_id=oid, deltas={_sku(filler, oid): _delta(rng)}, audit=the_audit)
        times.append(time.perf_counter() - started)
        in_sql.append(spent)
        # The machine's share, alternated with the writes: a one-row UPDATE and its COMMIT
        # (a WAL flush) on a table the ledger's size does not touch.
        started = time.perf_counter()
        with transaction.atomic():
            _sql("UPDATE orders_customer SET name = name WHERE id = 1")
        references.append(time.perf_counter() - started)
    bulk_times = []
    for _ in range(args.bulks):
        commands = [
            OrderCommand(o, [LineRequest(_sku(filler, o), delta=_delta(rng))])
            for o in rng.sample(ordinary, min(args.bulk_items, len(ordinary)))
        ]
        started = time.perf_counter()
        outcomes = order_adjustments_bulk(commands=commands, atomic=False, audit=the_audit)
        bulk_times.append(time.perf_counter() - started)
        refused = [o for o in outcomes if o.status == OutcomeStatus.REFUSED]
        assert not refused, refused[:3]
    return {
        "single_write_p50_s": _p(times, 0.5),
        "single_write_p99_s": _p(times, 0.99),
        "single_writes": len(times),
        "reference_commit_p50_s": _p(references, 0.5),
        # The statements order_adjust sends (BEGIN and COMMIT are not among them).
        "single_write_sql_p50_s": _p(in_sql, 0.5),
        "bulk_rows_per_s": len(commands) * len(bulk_times) / sum(bulk_times),
        "bulk_batches_s": bulk_times,
    }


class Client:
    """GET requests to the WSGI application in this process, as an auditor."""

    def __init__(self, token: str):
        from django.core.wsgi import get_wsgi_application

        self.app = get_wsgi_application()
        self.token = token

    def get(self, path: str, query: str = "", accept: str = "application/json"):
        status = []

        def start_response(s, headers, exc_info=None):
            status.append(s)

        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Token {self.token}",
            "HTTP_ACCEPT": accept,
            "CONTENT_LENGTH": "0",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
        }
        response = self.app(environ, start_response)
        try:
            body = b"".join(response)
        finally:
            if hasattr(response, "close"):
                response.close()
        assert status and status[0].startswith("200"), (path, query, status, body[:300])
        return body


def _cursor(position) -> str:
    """A DRF CursorPagination cursor that starts after `position` (its first ordering
    field's value), as a `next` link deep in the list would carry."""
    return base64.b64encode(urllib.parse.urlencode({"p": str(position)}).encode()).decode()


def _timed(fn, n: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def measure_reads(args, filler: Fill, client: Client) -> dict:
    from history.selectors import order_as_of

    oid = filler.long_orders[0]
    versions = _one("SELECT version FROM orders_order WHERE id = %s", [oid])
    n = args.reads
    result = {}

    def page(path, query):
        body = client.get(path, query)
        data = json.loads(body)
        assert data["results"], (path, query)
        return data

    history = f"/api/v1/orders/{oid}/history/"
    result["order_history_first_p50_s"] = statistics.median(_timed(lambda: page(history, ""), n))
    deep = "cursor=" + urllib.parse.quote(_cursor(int(versions * 0.9)))
    result["order_history_deep_p50_s"] = statistics.median(_timed(lambda: page(history, deep), n))
    feed = "/api/v1/adjustments/"
    result["feed_first_p50_s"] = statistics.median(_timed(lambda: page(feed, ""), n))
    # Deep in the feed: after the median id.
    (lo, hi) = _sql("SELECT min(id), max(id) FROM history_orderledgerentry")[0]
    middle = (lo + hi) // 2
    deep_feed = "cursor=" + urllib.parse.quote(_cursor(middle))
    result["feed_deep_p50_s"] = statistics.median(_timed(lambda: page(feed, deep_feed), n))
    # as_of half way through the long order's life (half of its rows).
    t0, t1 = _sql(
        "SELECT min(occurred_at), max(occurred_at) FROM history_orderledgerentry "
        "WHERE order_id = %s",
        [oid],
    )[0]
    at = t0 + (t1 - t0) / 2
    state = order_as_of(order_id=oid, at=at)
    assert state is not None and not state.problems, state and state.problems[:3]
    result["as_of_versions"] = state.version
    result["as_of_p50_s"] = statistics.median(_timed(lambda: order_as_of(order_id=oid, at=at), n))
    result["history_order"] = oid
    result["history_order_versions"] = versions
    result["feed_deep_after_id"] = middle
    return result


def measure_export(args, client: Client) -> dict:
    """The adjustments CSV export (the streaming view) of the --export-rows rows from the
    middle of the 36 months: `since` and `until` bound them."""
    now = datetime.now(UTC)
    since = month_start(now, MONTHS // 2)
    until = _one(
        "SELECT occurred_at FROM history_orderledgerentry WHERE occurred_at >= %s "
        "ORDER BY occurred_at OFFSET %s LIMIT 1",
        [since, args.export_rows],
    )
    expected = _one(
        "SELECT count(*) FROM history_orderledgerentry WHERE occurred_at >= %s "
        "AND occurred_at < %s",
        [since, until],
    )
    query = urllib.parse.urlencode(
        {"format": "csv", "since": since.isoformat(), "until": until.isoformat()}
    )
    times = []
    for _ in range(args.exports):
        started = time.perf_counter()
        body = client.get("/api/v1/adjustments/", query, accept="text/csv")
        times.append(time.perf_counter() - started)
        rows = body.count(b"\n") - 1
        assert rows == expected, (rows, expected)
    best = statistics.median(times)
    return {
        "export_rows": expected,
        "export_s": best,
        "export_rows_per_s": expected / best,
        "export_since": since.isoformat(),
        "export_until": until.isoformat(),
    }


class _Rollback(Exception):
    pass


def measure_relay(args) -> dict:
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from history.relay import _claim, _in_aggregate_order

    pending = _one("SELECT count(*) FROM history_outboxevent WHERE published_at IS NULL")
    claimed = []

    def claim():
        try:
            with transaction.atomic():
                rows = _claim(timezone.now(), settings.RELAY_BATCH_SIZE)
                _in_aggregate_order(rows)
                claimed.append(len(rows))
                raise _Rollback
        except _Rollback:
            pass

    times = _timed(claim, args.reads)
    assert claimed[-1] == min(pending, settings.RELAY_BATCH_SIZE), (claimed[-1], pending)
    return {"relay_claim_p50_s": statistics.median(times), "relay_claimed": claimed[-1],
            "outbox_pending": pending}  # fmt: skip


def _months_ahead_made(now: datetime) -> int:
    """How many months after this one the ledger's partitions reach."""
    name = _one(
        "SELECT max(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'history_orderledgerentry'::regclass "
        "AND c.relname ~ '_p[0-9]{6}$'"
    )
    return int(name[-6:-2]) * 12 + int(name[-2:]) - (now.year * 12 + now.month)


def measure_partitions(args, now: datetime) -> dict:
    from history.services import outbox_published_purge, partitions_ensure

    beat = _timed(lambda: partitions_ensure(months_ahead=3), args.reads)
    # A month further ahead than any earlier call made, three times: a partition for each
    # table each time.
    create = []
    ahead = _months_ahead_made(now)
    for step in range(3):
        started = time.perf_counter()
        made = partitions_ensure(months_ahead=ahead + 1 + step)
        create.append(time.perf_counter() - started)
        assert made == 3, made
    drop_month = droppable_month(now)
    rows = _one(
        "SELECT count(*) FROM history_outboxevent WHERE created_at >= %s AND created_at < %s",
        [drop_month, month_start(drop_month, -1)],
    )
    started = time.perf_counter()
    dropped = outbox_published_purge(older_than=timedelta(days=RETENTION_DAYS))
    drop = time.perf_counter() - started
    assert dropped == 1, dropped
    return {
        "partitions_ensure_beat_p50_s": statistics.median(beat),
        "partitions_ensure_create_s": statistics.median(create),
        "partitions_ensure_create_runs_s": create,
        "outbox_drop_s": drop,
        "outbox_dropped_rows": rows,
    }


# --- Report --------------------------------------------------------------------------------------

# (key, label, unit): "s" figures are times (lower is better), "rows/s" rates.
FIGURES = [
    ("single_write_p50_s", "order_adjust, p50", "s"),
    ("single_write_p99_s", "order_adjust, p99", "s"),
    ("bulk_rows_per_s", "order_adjustments_bulk (1,000 commands)", "rows/s"),
    ("order_history_first_p50_s", "order history, first page, p50", "s"),
    ("order_history_deep_p50_s", "order history, deep page, p50", "s"),
    ("feed_first_p50_s", "adjustments feed, first page, p50", "s"),
    ("feed_deep_p50_s", "adjustments feed, deep page, p50", "s"),
    ("as_of_p50_s", "order_as_of, p50", "s"),
    ("export_rows_per_s", "adjustments CSV export", "rows/s"),
    ("relay_claim_p50_s", "relay claim of a batch, p50", "s"),
    ("partitions_ensure_beat_p50_s", "partitions_ensure (beat, none to make), p50", "s"),
    ("partitions_ensure_create_s", "partitions_ensure making 3 partitions, p50 of 3", "s"),
    ("outbox_drop_s", "outbox partition drop (one month)", "s"),
]
# Not held to the goal: what the machine did meanwhile.
REFERENCES = [
    ("single_write_sql_p50_s", "order_adjust: its statements (no COMMIT), p50", "s"),
    ("reference_commit_p50_s", "reference: 1-row UPDATE + COMMIT, p50", "s"),
    ("load_average_1min", "load average (1 min) after measuring", "load"),
]


def cost_ratio(key_unit: str, first: float, value: float) -> float:
    return first / value if key_unit == "rows/s" else value / first


def _fmt(value: float, unit: str) -> str:
    if unit == "load":
        return f"{value:.2f}"
    if unit == "rows/s":
        return f"{value:,.0f} rows/s"
    return f"{value * 1e3:,.2f} ms"


def table(run: dict) -> str:
    sizes = run["sizes"]
    header = ["figure"] + [f"{s['rows']:,} rows" for s in sizes] + ["ratio at each size"]
    out = []
    for key, label, unit in FIGURES + REFERENCES:
        values = [s["figures"][key] for s in sizes]
        ratios = [cost_ratio(unit, values[0], v) for v in values]
        mark = " MISSED" if ratios[-1] > FLAT and (key, label, unit) in FIGURES else ""
        out.append(
            [label]
            + [_fmt(v, unit) for v in values]
            + [" / ".join(f"{r:.2f}" for r in ratios) + mark]
        )
    widths = [max(len(r[i]) for r in [header, *out]) for i in range(len(header))]
    lines = []
    for row in [header, ["-" * w for w in widths], *out]:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def chart(run: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = run["sizes"]
    rows = [s["rows"] / 1e6 for s in sizes]
    fig, ax = plt.subplots(figsize=(10, 6.5))
    colours = plt.get_cmap("tab20").colors
    for n, (key, label, unit) in enumerate(FIGURES):
        values = [s["figures"][key] for s in sizes]
        ax.plot(
            rows,
            [cost_ratio(unit, values[0], v) for v in values],
            marker="os^vD"[n % 5],
            linestyle="-" if n % 2 == 0 else "--",
            color=colours[n % len(colours)],
            label=label,
        )
    ax.axhline(FLAT, color="red", linestyle="--", linewidth=1, label=f"goal: at most {FLAT}x")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xticks(rows, [f"{r:g}M" for r in rows])
    ax.set_xlabel("order ledger rows (36 monthly partitions)")
    ax.set_ylabel(f"cost relative to {rows[0]:g}M rows (time ratio; rates inverted)")
    ax.set_title(f"make bench-scale, {run['began'][:16]} UTC, {run['facts']['nproc']} cores")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def auditor_token() -> str:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("issue_token", "bench-scale", role="auditor", name="bench-scale", days=1,
                 stdout=out)  # fmt: skip
    return out.getvalue().strip().splitlines()[-1]


# --- A/B: two kept databases measured in turn -------------------------------------------------


def _use_database(url: str) -> None:
    """Point the default connection at another database (the next query reconnects)."""
    from django.core.cache import cache
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = urllib.parse.urlparse(url).path.lstrip("/")
    cache.clear()  # the local cache's entries belong to the other database


def _filler_of_database(args, rng: random.Random, now: datetime) -> Fill:
    """A Fill's view of a database a run left (--keep): its orders, their first line's
    product, its long orders."""
    filler = Fill(args, rng, now)
    for oid, sku in _sql(
        "SELECT DISTINCT ON (l.order_id) l.order_id, p.sku FROM orders_orderline l "
        "JOIN inventory_product p ON p.id = l.product_id ORDER BY l.order_id, l.id"
    ):
        filler.orders[oid] = (int(sku.rsplit("-", 1)[1]),)
    filler.long_orders = [
        oid for (oid,) in _sql("SELECT id FROM orders_order WHERE version >= %s ORDER BY id",
                               [LONG_VERSIONS])
    ]  # fmt: skip
    assert filler.long_orders and filler.orders
    return filler


def _outbox_month_again(now: datetime) -> None:
    """The droppable month's outbox partition and events again (a measurement drops them)."""
    from history.services import partitions_ensure

    drop = droppable_month(now)
    partitions_ensure(months_ahead=3, since=drop)
    if not _one(
        "SELECT count(*) FROM history_outboxevent WHERE created_at >= %s AND created_at < %s",
        [drop, month_start(drop, -1)],
    ):
        _sql(OUTBOX_INSERT, {"since": drop, "until": month_start(drop, -1), "first": 0})
        _sql("VACUUM ANALYZE history_outboxevent")


def ab(args, urls: list[str]) -> int:
    """Measure two databases a run kept, in turn (A B, B A, A B, ...), so that both see the
    same machine: the ratio of their medians is the size's cost with the load shared."""
    import django

    django.setup()
    began = datetime.now(UTC)
    now = began
    rng = random.Random(args.seed)
    state = {}
    for url in urls:
        _use_database(url)
        rows = _one("SELECT count(*) FROM history_orderledgerentry")
        state[url] = {
            "rows": rows,
            "filler": _filler_of_database(args, rng, now),
            "client": Client(auditor_token()),
            "rounds": [],
        }
        print(f"{url.rsplit('/', 1)[-1]}: {rows:,} rows", flush=True)
    for r in range(args.rounds):
        for url in urls if r % 2 == 0 else urls[::-1]:
            _use_database(url)
            s = state[url]
            _outbox_month_again(now)
            figures: dict = {}
            figures.update(measure_writes(args, s["filler"], rng))
            figures.update(measure_reads(args, s["filler"], s["client"]))
            figures.update(measure_export(args, s["client"]))
            figures.update(measure_relay(args))
            figures.update(measure_partitions(args, now))
            figures["load_average_1min"] = os.getloadavg()[0]
            s["rounds"].append(figures)
            print(
                f"  round {r + 1}, {s['rows']:,} rows: order_adjust p50 "
                f"{figures['single_write_p50_s'] * 1e3:.2f} ms, load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    _use_database(urls[0])
    run = {
        "began": began.isoformat(),
        "mode": "ab",
        "facts": {"nproc": len(os.sched_getaffinity(0))},
        "args": vars(args),
        "sizes": [
            {
                "rows": state[url]["rows"],
                "database": url.rsplit("/", 1)[-1],
                "figures": {
                    key: statistics.median(f[key] for f in state[url]["rounds"])
                    for key, _, _ in FIGURES + REFERENCES
                },
                "rounds": state[url]["rounds"],
            }
            for url in urls
        ],
    }
    print()
    print(
        f"bench-scale A/B {began:%Y-%m-%d %H:%M} UTC, {args.rounds} rounds alternated, "
        "medians of the rounds' figures"
    )
    print(table(run))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"scale-ab-{began:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(run, indent=2, default=str))
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,30", help="ledger sizes, millions of rows")
    parser.add_argument("--versions", type=int, default=60, help="mean versions per order")
    parser.add_argument("--writes", type=int, default=300, help="order_adjust calls per size")
    parser.add_argument("--bulks", type=int, default=5, help="bulk commands per size")
    parser.add_argument("--bulk-items", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=30, help="calls per read figure")
    parser.add_argument("--export-rows", type=int, default=100_000)
    parser.add_argument("--exports", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--ab",
        help="two database URLs, comma-separated, that --keep runs left: measure them in "
        "turn, --rounds times each, no fill",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --ab")
    args = parser.parse_args(argv)
    if args.ab:
        urls = args.ab.split(",")
        os.environ["BENCH_SCALE_DATABASE_URL"] = urls[0]
        configure()
        return ab(args, urls)
    sizes = [round(float(s) * 1_000_000) for s in args.sizes.split(",") if s]
    if sizes != sorted(set(sizes)) or sizes[0] < LONG_ORDERS * LONG_VERSIONS * 2:
        parser.error(f"--sizes must grow, from at least {LONG_ORDERS * LONG_VERSIONS * 2:,} rows")

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
    from django.db import connection

    from bench.seed import CATALOGUE_SQL

    rng = random.Random(args.seed)
    run_started = time.perf_counter()
    began = datetime.now(UTC)
    now = began
    print("creating and migrating the benchmark database ...", flush=True)
    database = recreate_database()
    facts = {
        "database": database,
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": next(
            (line.split(":", 1)[1].strip() for line in CPUINFO.read_text().splitlines()
             if line.startswith("model name")), "?"),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "postgresql": _one("SHOW server_version"),
        "shared_buffers": _one("SHOW shared_buffers"),
        "python": platform.python_version(),
        "django": django.get_version(),
        "load_average_start": os.getloadavg(),
        "relay_batch_size": settings.RELAY_BATCH_SIZE,
    }  # fmt: skip
    print(
        f"database {database}, nproc={facts['nproc']}, PostgreSQL {facts['postgresql']} "
        f"(shared_buffers {facts['shared_buffers']}), load average "
        f"{facts['load_average_start'][0]:.2f}",
        flush=True,
    )
    run: dict = {"began": began.isoformat(), "facts": facts, "args": vars(args), "sizes": []}
    filler = Fill(args, rng, now)
    try:
        for statement in CATALOGUE_SQL:
            _sql(statement)
        _sql("INSERT INTO orders_customer (name, email, created_at) "
             "VALUES ('Bench customer', 'customer@bench.invalid', now())")  # fmt: skip
        filler.products = [
            pid
            for (pid,) in _sql(
                "SELECT id FROM inventory_product WHERE sku LIKE 'BENCH-U-%%' ORDER BY sku"
            )
        ]
        client = Client(auditor_token())
        for index, size in enumerate(sizes):
            print(f"filling the order ledger to {size:,} rows ...", flush=True)
            timings = fill(filler, size, now, first=index == 0)
            state_check(filler)
            database_bytes = _one("SELECT pg_database_size(current_database())")
            print(
                f"  {timings['rows_after']:,} rows, {timings['orders_after']:,} orders, "
                f"{timings['outbox_rows']:,} outbox rows in {timings['seconds']:.0f} s "
                f"(VACUUM ANALYZE {timings['vacuum_analyze_s']:.0f} s); database "
                f"{database_bytes / 2**30:.1f} GiB; load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            figures: dict = {}
            measured = time.perf_counter()
            print("  writes ...", flush=True)
            figures.update(measure_writes(args, filler, rng))
            print("  reads ...", flush=True)
            figures.update(measure_reads(args, filler, client))
            print("  export ...", flush=True)
            figures.update(measure_export(args, client))
            print("  relay claim and partitions ...", flush=True)
            figures.update(measure_relay(args))
            figures.update(measure_partitions(args, now))
            figures["load_average_1min"] = os.getloadavg()[0]
            connection.close()
            entry = {
                "rows": size,
                "fill": timings,
                "database_bytes": database_bytes,
                "measure_s": time.perf_counter() - measured,
                "load_average": os.getloadavg(),
                "figures": figures,
            }
            run["sizes"].append(entry)
            print(
                "  "
                + ", ".join(
                    f"{label.split(',')[0]} {_fmt(figures[key], unit)}"
                    for key, label, unit in FIGURES
                ),
                flush=True,
            )
    finally:
        if not args.keep:
            print("dropping the benchmark database ...", flush=True)
            with contextlib.suppress(Exception):
                drop_database()

    wall = time.perf_counter() - run_started
    run["wall_s"] = wall
    run["facts"]["load_average_end"] = os.getloadavg()
    print()
    print(
        f"bench-scale {began:%Y-%m-%d %H:%M} UTC, {wall / 60:.0f} min, {facts['nproc']} cores "
        f"({facts['cpu']}), {facts['memory_gib']} GiB, PostgreSQL {facts['postgresql']} "
        f"(shared_buffers {facts['shared_buffers']}); load average at start "
        f"{facts['load_average_start'][0]:.2f}, at end {run['facts']['load_average_end'][0]:.2f}"
    )
    print(table(run))
    print(
        f"ratio: cost at that size over the cost at {sizes[0]:,} rows (times: time / time; "
        f"rates: first rate / this rate); MISSED: above {FLAT} at the largest size"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = f"{began:%Y%m%dT%H%M%SZ}"
    path = RESULTS / f"scale-{stamp}.json"
    path.write_text(json.dumps(run, indent=2, default=str))
    png = RESULTS / f"scale-{stamp}.png"
    chart(run, png)
    print(f"wrote {path.relative_to(ROOT)} and {png.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
