"""make bench's reference servers (bench/floor, bench/peer) start and answer: one read and
one adjustment each, in a process of its own under its own settings, on the real PostgreSQL.
The floor runs on this test's database (an order made here); the peer on a database of its
own, seeded by bench.peer.seed and dropped at the end."""

import os
import subprocess
import sys

import orjson
import psycopg
import pytest
from django.db import connection

from history.models import OrderLedgerEntry
from tests.database import owner_dsn

pytestmark = pytest.mark.django_db(transaction=True)

# One read, then the first line adjusted by +2, through Django's test client.
CLIENT = """
import sys, django, orjson
django.setup()
from django.test import Client
order_id, token = sys.argv[1], sys.argv[2]
headers = {"HTTP_AUTHORIZATION": f"Token {token}"}
client = Client()
read = client.get(f"/api/v1/orders/{order_id}/", **headers)
sku = read.json()["lines"][0]["sku"]
body = {"sku": sku, "delta": 2, "reason": "smoke"}
adjust = client.post(
    f"/api/v1/orders/{order_id}/adjust/", body, content_type="application/json", **headers
)
print(orjson.dumps({"read": [read.status_code, read.json()],
                    "adjust": [adjust.status_code, adjust.json()]}).decode())
"""


def _url(database: str) -> str:
    dsn = owner_dsn()
    password = f":{dsn['password']}" if dsn.get("password") else ""
    return f"postgres://{dsn['user']}{password}@{dsn['host']}:{dsn['port']}/{database}"


def _ask(settings: str, database: str, order_id: int, token: str = "none") -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings, "DATABASE_URL": _url(database)}
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, str(order_id), token],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return orjson.loads(out.stdout.strip().splitlines()[-1])


def test_the_floor_reads_and_adjusts_an_order(make_order, product):
    # given
    order = make_order(lines={product.sku: 100})
    entries = OrderLedgerEntry.objects.filter(order_id=order.pk).count()

    # when
    answers = _ask("bench.floor.settings", connection.settings_dict["NAME"], order.pk)

    # then
    assert answers["read"][0] == 200
    assert answers["read"][1]["lines"] == [{"sku": product.sku, "quantity": 100}]
    assert answers["adjust"][0] == 200
    assert answers["adjust"][1]["lines"] == [{"sku": product.sku, "quantity": 102}]
    assert answers["adjust"][1]["version"] == order.version + 1
    assert OrderLedgerEntry.objects.filter(order_id=order.pk).count() == entries + 1


def test_the_peer_reads_and_adjusts_an_order():
    # given
    database = f"test_ordertrack_peer_{os.getpid()}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.peer.settings"}
    env["DATABASE_URL"] = _url(database)
    env["PEER_SEED_ORDERS"] = "100"
    try:
        seeded = subprocess.run(
            [sys.executable, "-m", "bench.peer.seed"],
            env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        token = seeded.stdout.strip().splitlines()[-1]

        # when
        answers = _ask("bench.peer.settings", database, 7, token)

        # then
        assert answers["read"][0] == 200
        before = answers["read"][1]["lines"][0]
        assert answers["adjust"][0] == 200
        after = answers["adjust"][1]["lines"][0]
        assert after == {**before, "quantity": before["quantity"] + 2}
        with psycopg.connect(**owner_dsn(), dbname=database) as peer:
            history = "SELECT count(*) FROM peer_historicalorderline WHERE history_type = '~'"
            assert peer.execute(history).fetchone() == (1,)
            outbox = "SELECT count(*) FROM peer_outbox WHERE published_at IS NULL"
            assert peer.execute(outbox).fetchone() == (1,)
    finally:
        with psycopg.connect(**owner_dsn(), dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
