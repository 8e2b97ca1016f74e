"""The ledgers and the outbox partitioned by month (history migration 0017): partitions made
ahead by the beat, readiness, pruning, append-only partitions, outbox retention by dropping
whole months, and the migration of a populated database."""

import os
import subprocess
import sys
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from history.models import OrderLedgerEntry, OutboxEvent
from history.selectors import PARTITIONED_TABLES, partitions_missing
from history.services import outbox_published_purge, partitions_ensure
from history.tasks import create_partitions, purge_published_outbox
from tests import database
from tests.partitions import as_owner as as_owner_sql
from tests.partitions import month_start, partition, relation_exists

pytestmark = pytest.mark.django_db


# --- partitions made ahead ----------------------------------------------------------------


def test_the_migration_made_this_month_and_three_ahead_of_every_table():
    for offset in range(4):
        assert partitions_missing(month=month_start(offset).date()) == []
    assert set(partitions_missing(month=month_start(4).date())) == set(PARTITIONED_TABLES)


def test_the_beat_task_creates_the_months_ahead_once(settings):
    # given
    settings.PARTITION_MONTHS_AHEAD = 5

    # when
    created = create_partitions.apply().get()
    again = create_partitions.apply().get()

    # then: two more months of each of the three tables, then nothing to do
    assert (created, again) == (6, 0)
    assert partitions_missing(month=month_start(5).date()) == []
    assert partitions_missing(month=month_start(6).date()) != []


def test_a_month_whose_rows_sit_in_the_default_partition_is_skipped_not_failed():
    # given: an event dated six months ahead, beyond the partitions: the DEFAULT one holds it
    table = OutboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (event_id, aggregate_type, aggregate_id, aggregate_version, "
            "event_type, payload, created_at, attempts, last_error) VALUES "
            "(gen_random_uuid(), 'order', '1', 1, 'order.created', '{}', %s, 0, '')",
            [month_start(6) + timedelta(days=1)],
        )
        cursor.execute(
            f"SELECT count(*) FROM {table} WHERE tableoid = %s::regclass", [f"{table}_default"]
        )
        assert cursor.fetchone() == (1,)

    # when: the months up to the sixth are made
    created = partitions_ensure(months_ahead=6)

    # then: every month but the outbox's sixth, which the function skips with a warning
    assert created == 3 * 3 - 1
    assert partitions_missing(month=month_start(6).date()) == [table]
    assert OutboxEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_new_ledger_partition_is_append_only_too():
    # given: a partition the runtime role had made through the owner's function
    partitions_ensure(months_ahead=4)
    name = partition(OrderLedgerEntry._meta.db_table, 4)

    # when / then: TRUNCATE of it is refused by its own trigger (statement triggers are
    # not inherited), even for the owner
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            as_owner_sql(f"TRUNCATE {name}")
    finally:
        for table in PARTITIONED_TABLES:
            as_owner_sql(f"DROP TABLE {partition(table, 4)}")


@pytest.mark.django_db(transaction=True)
def test_readyz_fails_when_next_months_partition_is_missing():
    # given: the check passes
    assert Client().get("/readyz").status_code == 200

    # when: next month's outbox partition is gone (detached as the owner)
    table = OutboxEvent._meta.db_table
    name = partition(table, 1)
    as_owner_sql(f"ALTER TABLE {table} DETACH PARTITION {name}")
    try:
        response = Client().get("/readyz")
    finally:
        as_owner_sql(
            f"ALTER TABLE {table} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{month_start(1).isoformat()}') TO ('{month_start(2).isoformat()}')"
        )

    # then
    assert response.status_code == 503
    assert response.json()["checks"]["partitions"] == {
        "status": "down",
        "error": "RuntimeError",
        "ms": response.json()["checks"]["partitions"]["ms"],
    }
    assert Client().get("/readyz").status_code == 200


# --- pruning ------------------------------------------------------------------------------


def test_a_query_over_a_time_range_reads_only_that_months_partition(make_order, product):
    # given
    make_order(lines={product.sku: 5})
    table = OrderLedgerEntry._meta.db_table

    # when
    plan = OrderLedgerEntry.objects.filter(
        occurred_at__gte=month_start(0), occurred_at__lt=month_start(1), product=product
    ).explain()

    # then
    scanned = {name for name in _partition_names(table) if name in plan}
    assert scanned == {partition(table, 0)}, plan


def _partition_names(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass",
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


# --- append-only on every partition -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "statement",
    ["UPDATE {} SET reason = 'rewritten'", "DELETE FROM {}", "TRUNCATE {}"],
)
def test_a_ledger_partition_refuses_changes_even_to_its_owner(make_order, product, statement):
    # given: a committed ledger row, in this month's partition
    make_order(lines={product.sku: 5})
    name = partition(OrderLedgerEntry._meta.db_table, 0)
    sql = statement.format(name)

    # when / then: the runtime role has no privilege on a partition at all
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    # and the owner meets the triggers
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        as_owner_sql(sql)
    assert OrderLedgerEntry.objects.get().reason == "test"


# --- outbox retention ---------------------------------------------------------------------


def test_retention_drops_whole_published_months_and_keeps_months_with_pending_events(
    make_order, product
):
    # given: partitions since three months ago; three months ago two events, both long
    # published; two months ago one published and one dead-lettered; this month's pending
    partitions_ensure(months_ahead=3, since=month_start(-3))
    for _ in range(5):
        make_order(lines={product.sku: 1})
    old, old_too, kept, dead, pending = OutboxEvent.objects.order_by("id")
    long_ago = timezone.now() - timedelta(days=60)
    for event, month in ((old, -3), (old_too, -3), (kept, -2), (dead, -2)):
        OutboxEvent.objects.filter(pk=event.pk).update(created_at=month_start(month))
    OutboxEvent.objects.filter(pk__in=[old.pk, old_too.pk, kept.pk]).update(published_at=long_ago)
    OutboxEvent.objects.filter(pk=dead.pk).update(dead_lettered_at=long_ago, attempts=10)
    table = OutboxEvent._meta.db_table

    # when
    dropped = purge_published_outbox.apply().get()

    # then: the month three months ago is gone, partition and rows, and last month's empty
    # partition; the others stay whole
    assert dropped == 2
    assert not relation_exists(partition(table, -3))
    assert not relation_exists(partition(table, -1))
    assert relation_exists(partition(table, -2))
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {kept.pk, dead.pk, pending.pk}
    assert OrderLedgerEntry.objects.count() == 5
    assert outbox_published_purge(older_than=timedelta(days=7)) == 0

    # and once the dead letter is published (retried), its month goes too
    OutboxEvent.objects.filter(pk=dead.pk).update(dead_lettered_at=None, published_at=long_ago)
    assert outbox_published_purge(older_than=timedelta(days=7)) == 1
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {pending.pk}


def test_retention_keeps_a_month_whose_events_were_published_within_the_retention():
    # given: last month's only event, published a day ago
    partitions_ensure(months_ahead=3, since=month_start(-1))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {OutboxEvent._meta.db_table} (event_id, aggregate_type, aggregate_id, "
            "aggregate_version, event_type, payload, created_at, published_at, attempts, "
            "last_error) VALUES (gen_random_uuid(), 'order', '1', 1, 'order.created', '{}', "
            "%s, %s, 1, '')",
            [month_start(-1), timezone.now() - timedelta(days=1)],
        )

    # when / then
    assert outbox_published_purge(older_than=timedelta(days=2)) == 0
    assert OutboxEvent.objects.count() == 1


# --- the migration of a populated database ------------------------------------------------

BEFORE_0017 = """
from unittest import mock
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from history.seals import ledger_seal

executor = MigrationExecutor(connection)
executor.migrate(
    [("history", "0016_daily_change_counts")]
    + [node for node in executor.loader.graph.leaf_nodes() if node[0] != "history"]
)
# Today's code reads the outbox's later columns (0019, the trace context): the 0016 table
# has them while it is seeded, and not after.
with connection.cursor() as cursor:
    cursor.execute(
        "ALTER TABLE history_outboxevent ADD COLUMN traceparent varchar(55) NOT NULL DEFAULT '', "
        "ADD COLUMN tracestate text NOT NULL DEFAULT ''"
    )
# The code of before 0017 made no partitions.
with mock.patch("orders.management.commands.seed_demo.partitions_ensure"):
    call_command("seed_demo", admin_password="demo-password")
ledger_seal()
with connection.cursor() as cursor:
    cursor.execute(
        "ALTER TABLE history_outboxevent DROP COLUMN traceparent, DROP COLUMN tracestate"
    )
"""

# What must not change: every row's id, time and hash, in id order, per table.
FINGERPRINT = """
SELECT count(*), max(id), md5(string_agg(id || ':' || {key} || ':' || {hash}, ',' ORDER BY id))
FROM {table}
"""
KEYS = {
    "history_orderledgerentry": ("occurred_at", "encode(hash, 'hex')"),
    "history_stockledgerentry": ("occurred_at", "encode(hash, 'hex')"),
    "history_outboxevent": ("created_at", "event_id"),
}


@pytest.fixture
def scratch_database():
    name = f"{connection.settings_dict['NAME']}_migrate_populated"
    owner = database.owner_dsn()
    with psycopg.connect(**owner, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(**owner, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manage(name: str, *args: str) -> subprocess.CompletedProcess:
    owner = database.owner_dsn()
    password = f":{owner['password']}" if owner["password"] else ""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": (
            f"postgres://{owner['user']}{password}@{owner['host']}:{owner['port']}/{name}"
        ),
        "TEST_DATABASE_RUNTIME_ROLE": "",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _fingerprints(name: str) -> dict:
    with psycopg.connect(**database.owner_dsn(), dbname=name) as owner:
        return {
            table: owner.execute(FINGERPRINT.format(table=table, key=key, hash=digest)).fetchone()
            for table, (key, digest) in KEYS.items()
        }


def test_a_populated_database_is_migrated_and_verifies(scratch_database):
    # given: a database at 0016 with the demo's 90 days of history, sealed
    seeded = _manage(scratch_database, "shell", "-c", BEFORE_0017)
    assert seeded.returncode == 0, seeded.stderr
    before = _fingerprints(scratch_database)
    assert all(rows > 0 for rows, _, _ in before.values())

    # when
    migrated = _manage(scratch_database, "migrate")
    assert migrated.returncode == 0, migrated.stderr

    # then: the same rows, ids, times and hashes; chains, seals and state verify
    assert _fingerprints(scratch_database) == before
    verified = _manage(scratch_database, "verify_ledger")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with psycopg.connect(**database.owner_dsn(), dbname=scratch_database) as owner:
        for table in KEYS:
            kind = owner.execute(
                "SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table]
            ).fetchone()
            assert kind == ("p",)
            # every row found a month of its own, none the DEFAULT partition
            assert owner.execute(f"SELECT count(*) FROM {table}_default").fetchone() == (0,)
            months = owner.execute(f"SELECT count(DISTINCT tableoid) FROM {table}").fetchone()[0]
            assert months >= 3
            # the next id follows the last one
            (next_id,) = owner.execute(f"SELECT nextval('{table}_id_seq')").fetchone()
            assert next_id > before[table][1]
