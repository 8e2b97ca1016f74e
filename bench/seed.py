"""Seed the HTTP benchmark's database (`make bench`, bench/load.py) with set-based SQL.

The database is the benchmark's own (`ordertrack_bench_http` unless BENCH_HTTP_DATABASE_URL
says otherwise): created if missing, migrated under config.settings.bench, and its data
tables emptied and filled again on every run, so each run starts from the same state:

- 50 untracked products `BENCH-U-000` .. `BENCH-U-049` (quantity writes need no stock) and
  10 tracked products `BENCH-T-00` .. `BENCH-T-09` with 1,000,000,000 units received at
  `BENCH-WH` (a stock level and its `receive` stock-ledger row each);
- 100 customers;
- ORDERS (10,000) open orders, ids 1..ORDERS, each with LINES_PER_ORDER (3) lines on
  untracked products: line k of order i is on `BENCH-U-{(3 i + k) % 50}` (`order_skus`),
  quantity 500..999; one `order.created` ledger row per line (reason code `system`) and
  one outbox event per order, already published so that the relay starts with an empty
  backlog;
- HISTORY_ORDERS (4) orders, ids ORDERS+1.., with one line and HISTORY_ENTRIES (10,000)
  ledger rows (versions 1..10,000, reason code `customer_request`; one outbox event per
  version, published);
- every ledger row with its hash chain (history.chain: `prev_hash`, `hash`) and every order
  and stock level with its `ledger_head`, so that `manage.py verify_ledger` finds every
  chain intact (see `ChainedRows`);
- the projections folded up to date, and an integrator user with an API token.

bench/pgbench/*.sql rely on these ids and on the line -> product rule.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from history.chain import GENESIS, order_entry_hash, stock_entry_hash

ORDERS = 10_000
LINES_PER_ORDER = 3
UNTRACKED = 50
TRACKED = 10
CUSTOMERS = 100
HISTORY_ORDERS = 4
HISTORY_ENTRIES = 10_000
USERNAME = "bench-integrator"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ordertrack_bench_http"

DATA_TABLES = [
    "history_accesslogentry",
    "history_ledgerseal",
    "history_consumedevent",
    "history_idempotencyrecord",
    "history_orderledgerentry",
    "history_stockledgerentry",
    "history_outboxevent",
    "history_projectioncheckpoint",
    "history_ordersnapshot",
    "history_skudemand",
    "history_skudailyadjustments",
    "history_skustocktotals",
    "inventory_reservationallocation",
    "inventory_reservation",
    "inventory_transfer",
    "inventory_stocklevel",
    "inventory_location",
    "inventory_product",
    "orders_orderline",
    "orders_order",
    "orders_customer",
]


def order_skus(order_id: int) -> list[str]:
    """The skus of a seeded order's lines, in line order."""
    return [f"BENCH-U-{(order_id * 3 + k) % UNTRACKED:03d}" for k in range(LINES_PER_ORDER)]


def history_order_ids() -> list[int]:
    return list(range(ORDERS + 1, ORDERS + HISTORY_ORDERS + 1))


def configure() -> None:
    """Point config.settings.bench at the HTTP benchmark's database (before django.setup)."""
    os.environ["BENCH_DATABASE_URL"] = database_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")


def database_url() -> str:
    return os.environ.get("BENCH_HTTP_DATABASE_URL", DEFAULT_DATABASE_URL)


# The outbox payload of an order event, shaped like history.events.order_event_data.
def _payload_sql(
    order: str, version: str, status: str, changes: str, occurred: str, reason_code: str
) -> str:
    return f"""jsonb_build_object(
        'order_id', {order}, 'aggregate_version', {version}, 'status', {status},
        'reference', 'BENCH-' || {order}, 'customer_id', 1 + {order} % {CUSTOMERS},
        'changes', {changes}, 'actor', 'bench-seed', 'source', 'system',
        'reason', 'benchmark seed', 'reason_code', {reason_code}, 'correlation_id', '',
        'occurred_at', to_char({occurred} AT TIME ZONE 'UTC',
                               'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))"""


CREATED_PAYLOAD = _payload_sql(
    "o.id",
    "1",
    "'open'",
    "(SELECT jsonb_agg(jsonb_build_object('sku', p.sku, 'before', 0, 'after', l.quantity,"
    " 'delta', l.quantity) ORDER BY l.id) FROM orders_orderline l"
    " JOIN inventory_product p ON p.id = l.product_id WHERE l.order_id = o.id)",
    "o.created_at",
    "'system'",
)
HISTORY_PAYLOAD = _payload_sql(
    "e.order_id",
    "e.version",
    "'open'",
    "jsonb_build_array(jsonb_build_object('sku', e.sku, 'before', e.quantity_before,"
    " 'after', e.quantity_after, 'delta', e.delta))",
    "e.occurred_at",
    "e.reason_code",
)


# The hash chains (history.chain, issue 11). Every ledger row stores `prev_hash` (its
# order's, or stock level's, previous row's hash; GENESIS for the first) and `hash`, and
# the order (stock level) stores the last one as `ledger_head`; `manage.py verify_ledger`
# recomputes them all.
#
# How the seed gets them: each ledger insert is a SELECT (the same set-based SQL as
# before, in the aggregates' (key, version) order, which is the id order the rows get)
# whose rows come to Python, are hashed with history.chain itself (`order_entry_hash`,
# `stock_entry_hash`: the encoding is not written out a second time here), and go back to
# the table with COPY, `prev_hash` and `hash` included; the heads are set at the end with
# one UPDATE per aggregate table. The other way, the migration's (INSERT, then a hashing
# pass that UPDATEs every ledger row with the append-only triggers switched off), writes
# each of the 70,000 ledger rows twice: a second row version and, the pages being full, a
# second entry in each of the ledger's seven indexes, and dead tuples in the table the
# history scenario reads (not measured; that is how PostgreSQL updates a full page). Here
# each ledger row is written once and the triggers stay on. The values are still SQL's:
# the hash covers what PostgreSQL returned (`occurred_at` to the microsecond, the md5
# event ids), and COPY writes those same values back. The price is the round trip through
# Python: the fill went from ~2.8 s to ~4.3 s at a load average of 1-2 (bench/README.md,
# "After the hash chain"), most of it the hashing, which either way must do.
@dataclass(frozen=True)
class ChainedRows:
    """Ledger rows made by `select` (its column names are the table's), chained per
    aggregate (`key` columns) in the select's order."""

    table: str
    select: str
    key: tuple[str, ...]
    entry_hash: Callable[[bytes, dict], bytes]


def _insert_chained(step: ChainedRows, heads: dict) -> int:
    """Insert the step's rows with their chain hashes; `heads` (aggregate key -> last hash)
    carries each chain on from one step to the next and ends with every head."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(step.select)
        columns = [column.name for column in cursor.description]
        rows = cursor.fetchall()
        key = [columns.index(name) for name in step.key]
        copy_sql = f"COPY {step.table} ({', '.join(columns)}, prev_hash, hash) FROM STDIN"
        with cursor.cursor.copy(copy_sql) as copy:
            for row in rows:
                aggregate = tuple(row[i] for i in key)
                prev = heads.get(aggregate, GENESIS)
                digest = step.entry_hash(prev, dict(zip(columns, row, strict=True)))
                heads[aggregate] = digest
                copy.write_row((*row, prev, digest))
    return len(rows)


def _set_heads(heads: dict) -> None:
    """Every order's and stock level's `ledger_head`: the hash of its last ledger row."""
    orders = [(k[0], h) for k, h in heads.items() if len(k) == 1]
    levels = [(*k, h) for k, h in heads.items() if len(k) == 2]
    _execute(
        "UPDATE orders_order AS o SET ledger_head = v.h "
        "FROM unnest(%s::bigint[], %s::bytea[]) AS v(id, h) WHERE o.id = v.id",
        [[o for o, _ in orders], [h for _, h in orders]],
    )
    _execute(
        "UPDATE inventory_stocklevel AS s SET ledger_head = v.h "
        "FROM unnest(%s::bigint[], %s::bigint[], %s::bytea[]) AS v(p, l, h) "
        "WHERE s.product_id = v.p AND s.location_id = v.l",
        [list(column) for column in zip(*levels, strict=True)] if levels else [[], [], []],
    )


# Products (ids 1..50 untracked, 51..60 tracked: RESTART IDENTITY makes this exact) and the
# one warehouse; make bench-audit seeds the same catalogue.
CATALOGUE_SQL = [
    f"""INSERT INTO inventory_product (
           sku, name, track_inventory, allow_backorder, created_at, version)
        SELECT 'BENCH-U-' || lpad(p::text, 3, '0'), 'Bench untracked ' || p, false, false, now(), 1
        FROM generate_series(0, {UNTRACKED - 1}) AS p ORDER BY p""",
    f"""INSERT INTO inventory_product (
           sku, name, track_inventory, allow_backorder, created_at, version)
        SELECT 'BENCH-T-' || lpad(p::text, 2, '0'), 'Bench tracked ' || p, true, false, now(), 1
        FROM generate_series(0, {TRACKED - 1}) AS p ORDER BY p""",
    """INSERT INTO inventory_location (code, name, type, address, active, priority, created_at)
       VALUES ('BENCH-WH', 'Bench warehouse', 'warehouse', '', true, 100, now())""",
]

SEED_SQL = [
    *CATALOGUE_SQL,
    """INSERT INTO inventory_stocklevel (product_id, location_id, on_hand, reserved, in_transit,
                                         backorder, reorder_point, safety_stock, is_low,
                                         version, updated_at)
       SELECT p.id, l.id, 1000000000, 0, 0, 0, 0, 0, false, 1, now()
       FROM inventory_product p CROSS JOIN inventory_location l
       WHERE p.track_inventory ORDER BY p.id""",
    ChainedRows(
        "history_stockledgerentry",
        """SELECT md5('receive-' || p.id)::uuid AS event_id, p.id AS product_id, p.sku,
                  l.id AS location_id, l.code AS location_code, 'receive' AS movement,
                  1000000000 AS delta_on_hand, 0 AS delta_reserved, 0 AS delta_in_transit,
                  0 AS delta_backorder, 1000000000 AS on_hand_after, 0 AS reserved_after,
                  0 AS in_transit_after, 0 AS backorder_after, 1 AS version,
                  '' AS reference_type, '' AS reference_id, 'bench-seed' AS actor,
                  'system' AS source, 'system' AS reason_code, 'benchmark seed' AS reason,
                  now() - interval '2 days' AS occurred_at, '' AS correlation_id,
                  '' AS idempotency_key
           FROM inventory_product p CROSS JOIN inventory_location l
           WHERE p.track_inventory ORDER BY p.id""",
        key=("product_id", "location_id"),
        entry_hash=stock_entry_hash,
    ),
    f"""INSERT INTO history_outboxevent (event_id, aggregate_type, aggregate_id,
            aggregate_version, event_type, payload, created_at, published_at, attempts,
            last_error)
        SELECT md5('receive-' || p.id)::uuid, 'stock', p.sku, 1, 'stock.received',
               jsonb_build_object('sku', p.sku, 'aggregate_version', 1),
               now() - interval '2 days', now() - interval '2 days', 1, ''
        FROM inventory_product p WHERE p.track_inventory ORDER BY p.id
        LIMIT {TRACKED}""",
    f"""INSERT INTO orders_customer (name, email, created_at)
        SELECT 'Bench customer ' || c, 'customer' || c || '@bench.invalid', now()
        FROM generate_series(1, {CUSTOMERS}) AS c ORDER BY c""",
    # Orders 1..ORDERS, then the history orders, all version 1 for now.
    f"""INSERT INTO orders_order (customer_id, reference, status, version, created_at,
                                  updated_at)
        SELECT 1 + i % {CUSTOMERS}, 'BENCH-' || i, 'open', 1,
               now() - interval '1 day' + i * interval '1 ms',
               now() - interval '1 day' + i * interval '1 ms'
        FROM generate_series(1, {ORDERS}) AS i ORDER BY i""",
    f"""INSERT INTO orders_orderline (order_id, product_id, quantity)
        SELECT i, 1 + (i * 3 + k) % {UNTRACKED}, 500 + (i * 7 + k * 131) % 500
        FROM generate_series(1, {ORDERS}) AS i CROSS JOIN generate_series(0, 2) AS k
        ORDER BY i, k""",
    ChainedRows(
        "history_orderledgerentry",
        f"""SELECT md5('order-' || o.id)::uuid AS event_id, o.id AS order_id, l.product_id,
                   p.sku, 1 AS version, 'order.created' AS event_type, l.quantity AS delta,
                   0 AS quantity_before, l.quantity AS quantity_after, 'bench-seed' AS actor,
                   'system' AS source, 'system' AS reason_code, 'benchmark seed' AS reason,
                   o.created_at AS occurred_at, '' AS correlation_id, '' AS idempotency_key
            FROM orders_order o JOIN orders_orderline l ON l.order_id = o.id
            JOIN inventory_product p ON p.id = l.product_id
            WHERE o.id <= {ORDERS} ORDER BY l.id""",
        key=("order_id",),
        entry_hash=order_entry_hash,
    ),
    f"""INSERT INTO history_outboxevent (event_id, aggregate_type, aggregate_id,
            aggregate_version, event_type, payload, created_at, published_at, attempts,
            last_error)
        SELECT md5('order-' || o.id)::uuid, 'order', o.id::text, 1, 'order.created',
               {CREATED_PAYLOAD},
               o.created_at, o.created_at, 1, ''
        FROM orders_order o WHERE o.id <= {ORDERS} ORDER BY o.id""",
    # The history orders: one line (BENCH-U-000) whose quantity goes 100, 101, 100, ...
    f"""INSERT INTO orders_order (customer_id, reference, status, version, created_at,
                                  updated_at)
        SELECT 1, 'BENCH-HISTORY-' || h, 'open', {HISTORY_ENTRIES},
               now() - interval '{HISTORY_ENTRIES + 60} seconds', now() - interval '1 minute'
        FROM generate_series(1, {HISTORY_ORDERS}) AS h ORDER BY h""",
    f"""INSERT INTO orders_orderline (order_id, product_id, quantity)
        SELECT id, 1, {100 + (1 if HISTORY_ENTRIES % 2 == 0 else 0)}
        FROM orders_order WHERE id > {ORDERS} ORDER BY id""",
    ChainedRows(
        "history_orderledgerentry",
        f"""SELECT md5('history-' || o.id || '-' || v)::uuid AS event_id, o.id AS order_id,
                   1 AS product_id, 'BENCH-U-000' AS sku, v AS version,
                   CASE WHEN v = 1 THEN 'order.created' ELSE 'order.quantity_adjusted' END
                       AS event_type,
                   CASE WHEN v = 1 THEN 100 WHEN v % 2 = 0 THEN 1 ELSE -1 END AS delta,
                   CASE WHEN v = 1 THEN 0 WHEN v % 2 = 0 THEN 100 ELSE 101 END
                       AS quantity_before,
                   CASE WHEN v % 2 = 0 THEN 101 ELSE 100 END AS quantity_after,
                   'integrator-' || v % 17 AS actor, 'api' AS source,
                   'customer_request' AS reason_code,
                   'Customer asked by phone to change quantities' AS reason,
                   o.created_at + v * interval '1 second' AS occurred_at,
                   md5(o.id || '-' || v) AS correlation_id, '' AS idempotency_key
            FROM orders_order o CROSS JOIN generate_series(1, {HISTORY_ENTRIES}) AS v
            WHERE o.id > {ORDERS} ORDER BY o.id, v""",
        key=("order_id",),
        entry_hash=order_entry_hash,
    ),
    f"""INSERT INTO history_outboxevent (event_id, aggregate_type, aggregate_id,
            aggregate_version, event_type, payload, created_at, published_at, attempts,
            last_error)
        SELECT e.event_id, 'order', e.order_id::text, e.version, e.event_type,
               {HISTORY_PAYLOAD},
               e.occurred_at, e.occurred_at, 1, ''
        FROM history_orderledgerentry e WHERE e.order_id > {ORDERS} ORDER BY e.id""",
]


def _execute(sql: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def ensure_database() -> str:
    """Create the database if missing and migrate it (under config.settings.bench)."""
    from bench.relay import ensure_database as create_and_migrate

    return create_and_migrate()


def token_for(username: str = USERNAME) -> str:
    """A new API token for the benchmark's integrator (issue_token creates the user if
    needed; each call issues a token of its own, valid for a day)."""
    from django.core.management import call_command

    out = io.StringIO()
    call_command("issue_token", username, role="integrator", name="bench", days=1, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def seed() -> dict:
    """Empty the data tables and fill them again; returns counts and timings."""
    from django.db import connection, transaction

    from history.projector import projections_run

    started = time.perf_counter()
    with transaction.atomic():
        # The ledgers refuse TRUNCATE (history migration 0012); the bench connects as the
        # superuser, who alone may switch the triggers off, and only for the TRUNCATE.
        _execute("SET LOCAL session_replication_role = replica")
        _execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")
        _execute("SET LOCAL session_replication_role = origin")
        heads: dict = {}
        for step in SEED_SQL:
            if isinstance(step, ChainedRows):
                _insert_chained(step, heads)
            else:
                _execute(step)
        _set_heads(heads)
    filled = time.perf_counter() - started
    with connection.cursor() as cursor:
        for table in DATA_TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")
    started_projection = time.perf_counter()
    applied = projections_run()
    projected = time.perf_counter() - started_projection
    ((orders, lines, ledger, outbox, unpublished),) = _execute(
        """SELECT (SELECT count(*) FROM orders_order), (SELECT count(*) FROM orders_orderline),
                  (SELECT count(*) FROM history_orderledgerentry),
                  (SELECT count(*) FROM history_outboxevent),
                  (SELECT count(*) FROM history_outboxevent WHERE published_at IS NULL)"""
    )
    assert orders == ORDERS + HISTORY_ORDERS and unpublished == 0, (orders, unpublished)
    return {
        "orders": orders,
        "lines": lines,
        "ledger_rows": ledger,
        "outbox_rows": outbox,
        "history_orders": history_order_ids(),
        "history_entries_per_order": HISTORY_ENTRIES,
        "fill_seconds": round(filled, 2),
        "projection_seconds": round(projected, 2),
        "projected_rows": applied,
        "seconds": round(time.perf_counter() - started, 2),
    }


def main() -> None:
    configure()
    import django

    django.setup()
    database = ensure_database()
    result = seed()
    token_for()
    print(f"seeded {database}: {result}")


if __name__ == "__main__":
    main()
