"""Create, migrate and seed the peer's database (bench/load.py runs this in a process of its
own): `python -m bench.peer.seed`, with DATABASE_URL set; prints the API token last.

The same rows as bench/seed.py: 50 products BENCH-U-000..049 (ids 1..50), 100 customers,
10,000 open orders (ids 1..10,000) with 3 lines each, line k of order i on BENCH-U-{(3 i + k)
% 50}, and what the peer itself would have written for them: a `+` history row per order
and per line (django-simple-history) and an outbox row per line, published.
"""

import os
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peer.settings")

# PEER_SEED_ORDERS: fewer orders for the smoke test (tests/test_bench_references.py).
ORDERS = int(os.environ.get("PEER_SEED_ORDERS", 10_000))
LINES_PER_ORDER, PRODUCTS, CUSTOMERS = 3, 50, 100
USERNAME = "bench-integrator"

SEED_SQL = [
    "TRUNCATE peer_outbox, peer_historicalorderline, peer_historicalorder, peer_orderline, "
    "peer_order, peer_product, peer_customer RESTART IDENTITY CASCADE",
    f"""INSERT INTO peer_product (id, sku, name)
        SELECT n + 1, 'BENCH-U-' || lpad(n::text, 3, '0'), 'Bench product ' || n
        FROM generate_series(0, {PRODUCTS - 1}) AS n""",
    f"""INSERT INTO peer_customer (id, name)
        SELECT n, 'Customer ' || n FROM generate_series(1, {CUSTOMERS}) AS n""",
    f"""INSERT INTO peer_order (id, customer_id, reference, status, created_at, updated_at)
        SELECT i, 1 + i % {CUSTOMERS}, 'BENCH-' || i, 'open', now(), now()
        FROM generate_series(1, {ORDERS}) AS i""",
    f"""INSERT INTO peer_orderline (order_id, product_id, quantity)
        SELECT i, 1 + (3 * i + k) % {PRODUCTS}, 500 + (7 * i + 13 * k) % 500
        FROM generate_series(1, {ORDERS}) AS i, generate_series(0, {LINES_PER_ORDER - 1}) AS k
        ORDER BY i, k""",
    """INSERT INTO peer_historicalorder (id, customer_id, reference, status, created_at,
        updated_at, history_date, history_type)
        SELECT id, customer_id, reference, status, created_at, updated_at, now(), '+'
        FROM peer_order ORDER BY id""",
    """INSERT INTO peer_historicalorderline (id, order_id, product_id, quantity, history_date,
        history_type)
        SELECT id, order_id, product_id, quantity, now(), '+' FROM peer_orderline ORDER BY id""",
    """INSERT INTO peer_outbox (event_type, aggregate_id, payload, created_at, published_at)
        SELECT 'order.line_created', l.order_id::text, jsonb_build_object('order_id',
        l.order_id, 'sku', p.sku, 'quantity', l.quantity), now(), now()
        FROM peer_orderline l JOIN peer_product p ON p.id = l.product_id ORDER BY l.id""",
]
SEQUENCES = ["peer_product", "peer_customer", "peer_order"]


def ensure_database(url: str) -> str:
    import environ

    from bench import postgres

    db = environ.Env.db_url_config(url)
    postgres.database_ensure(db)
    return db["NAME"]


def seed() -> tuple[str, float]:
    """Fill the tables; return the integrator's token and the seconds it took."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from rest_framework.authtoken.models import Token

    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in SEED_SQL:
            cursor.execute(statement)
        for table in SEQUENCES:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        cursor.execute("ANALYZE")
    user, _ = User.objects.get_or_create(username=USERNAME)
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    return token.key, time.monotonic() - started


def main() -> None:
    ensure_database(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ordertrack_bench_peer")
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    token, seconds = seed()
    print(f"seeded in {seconds:.1f} s")
    print(token)


if __name__ == "__main__":
    main()
