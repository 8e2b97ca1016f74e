"""Two databases behind one Redis never read each other's cached orders: every cache key
carries the database's instance id. Each database here is really created, migrated and
served by its own process (the web process a second environment would run), against the
test run's own Redis key prefix."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests import database

BASE_DIR = Path(settings.BASE_DIR)

# Runs in a process of its own against one database, one command per argument:
# `seed:REF:SKU:QTY` creates order 1 and a token, `adjust:SKU:DELTA` changes order 1, `get`
# reads order 1 through the API. Prints one JSON result per command.
_CLIENT = """
import json, sys
import django
django.setup()
from datetime import timedelta
from django.test import Client
from django.utils import timezone
from config.models import ApiToken
from config.tokens import token_digest
from history.audit import SYSTEM
from inventory.services import product_create
from orders.services import order_adjust, order_create
from tests.factories import UserFactory

SECRET = "k" * 43  # a token known in advance, so that later processes can use it
for command, *args in (argument.split(":") for argument in sys.argv[1:]):
    result = None
    if command == "seed":
        reference, sku, quantity = args[0], args[1], int(args[2])
        product_create(sku=sku, name=sku, track_inventory=False)
        order = order_create(
            customer_id=None, reference=reference, lines={sku: quantity}, audit=SYSTEM
        )
        ApiToken.objects.create(
            user=UserFactory(username="reader", role="integrator"), name="reader",
            prefix="reader00", digest=token_digest(SECRET),
            expires_at=timezone.now() + timedelta(days=1),
        )
        result = {"order": order.pk}
    elif command == "adjust":
        order_adjust(order_id=1, deltas={args[0]: int(args[1])}, audit=SYSTEM)
    elif command == "get":
        response = Client(HTTP_HOST="localhost").get(
            "/api/v1/orders/1/", HTTP_AUTHORIZATION="Token ot_reader00_" + SECRET
        )
        result = {"cache": response["X-Cache"], "order": json.loads(response.content)}
    print(json.dumps(result))
"""


def _admin(statement: str) -> None:
    with psycopg.connect(**database.owner_dsn(), dbname="postgres", autocommit=True) as admin:
        admin.execute(statement)


def _url(name: str, user: str) -> str:
    owner = database.owner_dsn()
    password = f":{owner['password']}" if owner["password"] and user == owner["user"] else ""
    return f"postgres://{user}{password}@{owner['host']}:{owner['port']}/{name}"


class Database:
    """One database of its own, served by separate processes that share the run's Redis:
    migrated by the owner, used by the runtime role, as a deployment would."""

    def __init__(self, name: str):
        self.name = name
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}

    def manage(self, *args: str, owner: bool = False) -> str:
        return self._run([sys.executable, "manage.py", *args], owner=owner)

    def client(self, *commands: str) -> list:
        out = self._run([sys.executable, "-c", _CLIENT, *commands])
        return [json.loads(line) for line in out.splitlines()]

    def _run(self, argv: list[str], owner: bool = False) -> str:
        user = database.owner_dsn()["user"] if owner else settings.DATABASE_RUNTIME_ROLE
        env = {**self.env, "TEST_DATABASE_URL": _url(self.name, user)}
        done = subprocess.run(
            argv, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout


@pytest.fixture
def databases():
    """Fresh databases, dropped at the end: `create(name)` makes and migrates one,
    `copy(source, name)` clones one as a restored backup would (its instance id too)."""
    made = []
    suffix = uuid.uuid4().hex[:8]

    def create(label: str) -> Database:
        database = Database(f"ordertrack_ns_{label}_{suffix}")
        _admin(f'CREATE DATABASE "{database.name}"')
        made.append(database.name)
        database.manage("migrate", "-v", "0", owner=True)
        return database

    def copy(source: Database, label: str) -> Database:
        database = Database(f"ordertrack_ns_{label}_{suffix}")
        _admin(f'CREATE DATABASE "{database.name}" TEMPLATE "{source.name}"')
        made.append(database.name)
        return database

    yield create, copy
    for name in made:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_databases_behind_one_redis_never_read_each_others_orders(databases):
    # given: two databases, each with its own order 1; A's is at version 3 and cached
    create, _ = databases
    a, b = create("a"), create("b")
    seeded, _, _, miss, hit = a.client(
        "seed:A-ORDER:A-SKU:5", "adjust:A-SKU:1", "adjust:A-SKU:1", "get", "get"
    )
    assert seeded == {"order": 1}
    assert (miss["cache"], hit["cache"]) == ("miss", "hit")

    # when: B reads its order 1 twice, then A reads its own again
    seeded, first, second = b.client("seed:B-ORDER:B-SKU:7", "get", "get")
    (again,) = a.client("get")

    # then: each sees only its own order, and both are served from the cache
    assert seeded == {"order": 1}
    assert (first["cache"], second["cache"]) == ("miss", "hit")
    for read in (first, second):
        assert read["order"]["reference"] == "B-ORDER"
        assert read["order"]["version"] == 1
        assert read["order"]["lines"] == [{"sku": "B-SKU", "quantity": 7}]
    assert again["cache"] == "hit"
    assert (again["order"]["reference"], again["order"]["version"]) == ("A-ORDER", 3)
    assert again["order"]["lines"] == [{"sku": "A-SKU", "quantity": 7}]


def test_a_restored_copy_gets_its_own_cache_after_rotate_instance_id(databases):
    # given: A's order is cached at version 1; a backup of A is restored as C, then A moves
    # on to version 2 and caches that
    create, copy = databases
    a = create("a")
    a.client("seed:A-ORDER:A-SKU:5", "get")
    c = copy(a, "c")
    _, _, cached = a.client("adjust:A-SKU:10", "get", "get")
    assert (cached["cache"], cached["order"]["version"]) == ("hit", 2)
    # the copy carries A's instance id, so it would be served A's newer entry
    assert c.client("get")[0]["order"]["version"] == 2

    # when
    output = c.manage("rotate_instance_id")

    # then: C reads its own state (version 1), caches it, and A keeps its own entry
    assert "new instance id" in output
    first, second = c.client("get", "get")
    assert (first["cache"], first["order"]["version"]) == ("miss", 1)
    assert first["order"]["lines"] == [{"sku": "A-SKU", "quantity": 5}]
    assert (second["cache"], second["order"]["version"]) == ("hit", 1)
    (read,) = a.client("get")
    assert (read["cache"], read["order"]["version"]) == ("hit", 2)
