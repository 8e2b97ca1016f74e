import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from history.models import OrderLedgerEntry, OutboxEvent
from tests import database

pytestmark = pytest.mark.django_db


LEDGER_CHANGES = [
    "UPDATE history_orderledgerentry SET delta = delta + 1",
    "UPDATE history_orderledgerentry SET reason = 'rewritten'",
    "DELETE FROM history_orderledgerentry",
    "TRUNCATE history_orderledgerentry",
    "TRUNCATE history_stockledgerentry",
    "TRUNCATE orders_order CASCADE",
]


@pytest.mark.parametrize("statement", LEDGER_CHANGES)
def test_the_runtime_role_may_not_change_ledger_rows(make_order, product, statement):
    # given
    make_order(lines={product.sku: 5})

    # when / then
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert OrderLedgerEntry.objects.get().delta == 5


def test_the_orm_cannot_edit_or_delete_a_ledger_row_either(make_order, product):
    # given
    make_order(lines={product.sku: 5})
    row = OrderLedgerEntry.objects.get()

    # when / then
    row.reason = "tampered"
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        row.save()
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        OrderLedgerEntry.objects.all().delete()
    assert OrderLedgerEntry.objects.get().reason == "test"


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE history_orderledgerentry DISABLE TRIGGER USER",
        "DROP TRIGGER history_orderledgerentry_append_only ON history_orderledgerentry",
        "CREATE TABLE mischief (id int)",
    ],
)
def test_the_runtime_role_owns_nothing_so_cannot_disable_the_guards(db, statement):
    with (
        pytest.raises(DatabaseError, match=r"must be owner|permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)


def test_the_runtime_role_owns_no_table_and_cannot_rewrite_migration_history(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = %s",
            [settings.DATABASE_RUNTIME_ROLE],
        )
        assert cursor.fetchone() == (0,)
        assert connection.settings_dict["USER"] == settings.DATABASE_RUNTIME_ROLE
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM django_migrations")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("statement", LEDGER_CHANGES)
def test_even_the_owner_cannot_change_ledger_rows(make_order, product, statement):
    # given: committed rows, seen by a connection of the tables' owner
    make_order(lines={product.sku: 5})
    owner = psycopg.connect(**database.owner_dsn(), dbname=connection.settings_dict["NAME"])

    # when / then: the triggers refuse, whatever the privileges
    with owner, pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        owner.execute(statement)
    assert OrderLedgerEntry.objects.get().delta == 5


def test_delta_must_match_before_and_after(make_order, product):
    # given
    order = make_order(lines={product.sku: 5})
    row = OrderLedgerEntry.objects.get()

    # when / then
    with pytest.raises(DatabaseError), transaction.atomic():
        OrderLedgerEntry.objects.create(
            event_id=row.event_id,
            order=order,
            product=product,
            sku=product.sku,
            version=2,
            event_type="order.quantity_adjusted",
            delta=3,
            quantity_before=5,
            quantity_after=9,
            actor="x",
            source="system",
            occurred_at=row.occurred_at,
        )


@pytest.mark.parametrize("unsettled", ["next_attempt_at", "dead_lettered_at"])
def test_a_published_event_cannot_wait_for_a_retry_or_be_dead_lettered(
    make_order, product, unsettled
):
    # given
    make_order(lines={product.sku: 1})
    event = OutboxEvent.objects.get()
    now = timezone.now()

    # then: the relay's stuck-aggregate read relies on this
    with pytest.raises(IntegrityError), transaction.atomic():
        OutboxEvent.objects.filter(pk=event.pk).update(published_at=now, **{unsettled: now})
    OutboxEvent.objects.filter(pk=event.pk).update(published_at=now)
