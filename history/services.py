"""Writes of the history app that are not recordings of a change (those go through
`history.recorder`): outbox housekeeping, idempotency records, consumed-event records,
the instance id, the access log, and the runtime role's privileges."""

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from history.models import (
    AccessAction,
    AccessLogEntry,
    ConsumedEvent,
    IdempotencyRecord,
    Instance,
    LedgerArchive,
    LedgerArchiveHead,
    LedgerSeal,
    OrderLedgerEntry,
    OutboxEvent,
    StockLedgerEntry,
)
from history.relay import outbox_kick
from history.selectors import PARTITIONED_TABLES


def idempotency_records_purge(*, older_than: timedelta) -> int:
    deleted, _ = IdempotencyRecord.objects.filter(
        created_at__lt=timezone.now() - older_than
    ).delete()
    return deleted


def outbox_events_retry(*, event_ids: list[int]) -> int:
    """Send dead-lettered events back to the relay, with a fresh attempt budget."""
    retried = OutboxEvent.objects.filter(
        pk__in=event_ids, dead_lettered_at__isnull=False, published_at__isnull=True
    ).update(dead_lettered_at=None, attempts=0, next_attempt_at=None)
    if retried:
        transaction.on_commit(outbox_kick)
    return retried


def _delete_in_batches(rows, batch_size: int) -> int:
    """Delete the rows `batch_size` at a time (short locks, small transactions); how many."""
    deleted = 0
    while ids := list(rows.values_list("id", flat=True)[:batch_size]):
        deleted += rows.model.objects.filter(id__in=ids).delete()[0]
    return deleted


def outbox_published_purge(*, older_than: timedelta) -> int:
    """Drop the outbox's monthly partitions that ended more than `older_than` ago and hold
    only events published before then (the ledger keeps the history; the outbox is only a
    delivery queue): a detach and a drop per month, never a row DELETE. A month still
    holding an unpublished or dead-lettered event is kept whole until it is published.
    How many partitions were dropped. The runtime role owns no table, so the owner's
    SECURITY DEFINER function does it (history migration 0017)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT history_outbox_partitions_drop(%s)", [timezone.now() - older_than])
        return cursor.fetchone()[0]


def partitions_ensure(*, months_ahead: int, since: datetime | None = None) -> int:
    """Create the monthly partitions of the ledgers and the outbox from `since`'s month (by
    default this month) to `months_ahead` months ahead, those missing; how many were
    created. Idempotent. Runs the owner's SECURITY DEFINER function (history migration
    0017), the runtime role having no DDL; it waits at most 5 s for a table's lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT history_partitions_ensure(%s, %s)", [months_ahead, since])
        return cursor.fetchone()[0]


def consumed_event_claim(*, consumer: str, event_id: uuid.UUID) -> bool:
    """Record that `consumer` handles this event; False if it already did. Call it inside the
    transaction of the handling, so the record commits or rolls back with the effect. Only
    this insert's conflict counts as "already handled" (ON CONFLICT DO NOTHING, no exception
    to confuse with the handler's own): a concurrent claim of the same id waits for the
    other transaction and then sees its row, or takes over if that one rolled back."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {ConsumedEvent._meta.db_table} (consumer, event_id, consumed_at) "
            "VALUES (%s, %s, %s) ON CONFLICT (consumer, event_id) DO NOTHING",
            [consumer, event_id, timezone.now()],
        )
        return cursor.rowcount == 1


def consumed_events_purge(*, older_than: timedelta, batch_size: int = 10_000) -> int:
    """Delete consumed-event records older than `older_than`, in batches to keep locks
    short. A redelivery older than that is no longer recognised as a duplicate, so keep
    them longer than any message may wait in a queue."""
    cutoff = timezone.now() - older_than
    return _delete_in_batches(ConsumedEvent.objects.filter(consumed_at__lt=cutoff), batch_size)


def instance_id_rotate() -> tuple[uuid.UUID | None, uuid.UUID]:
    """Give this database a new instance id, so no process reads the cache entries written
    under the old one (after restoring a backup over a running system). Returns (old, new)."""
    with transaction.atomic():
        instance = Instance.objects.select_for_update().filter(pk=1).first()
        old = instance.instance_id if instance else None
        instance = instance or Instance(pk=1)
        instance.instance_id = uuid.uuid4()
        instance.save()
    return old, instance.instance_id


def access_log_record(
    *,
    actor: str,
    action: AccessAction,
    target: str,
    filters: Mapping[str, Any],
    rows: int | None,
    correlation_id: str = "",
) -> AccessLogEntry:
    """Record that `actor` exported (or asked for a proof of) `target` with `filters`, and
    how many rows left the server. One INSERT, in a transaction of its own: durable, so it
    refuses to run inside the caller's transaction, whose rollback would take the entry
    with it. Call it once the response's data is read: an export's stream calls it when it
    finishes or is closed (history.apis.export_access_logger)."""
    with transaction.atomic(durable=True):
        return AccessLogEntry.objects.create(
            actor=actor,
            action=action,
            target=target,
            filters=dict(filters),
            rows=rows,
            occurred_at=timezone.now(),
            correlation_id=correlation_id,
        )


# The owner's functions the runtime role may execute (beat's hourly partition tasks), and
# those it may not: dropping and re-creating ledger months is for ledger_archive and
# ledger_restore, run as the owner.
PARTITION_FUNCTIONS = (
    "history_partitions_ensure(integer, timestamptz)",
    "history_outbox_partitions_drop(timestamptz)",
)
OWNER_ONLY_FUNCTIONS = (
    "history_ledger_archive_drop(bigint)",
    "history_ledger_archive_restore(bigint)",
)

APPEND_ONLY_TABLES = (
    OrderLedgerEntry._meta.db_table,
    StockLedgerEntry._meta.db_table,
    AccessLogEntry._meta.db_table,
    LedgerSeal._meta.db_table,
    LedgerArchive._meta.db_table,
    LedgerArchiveHead._meta.db_table,
)


def runtime_role_grant(*, role: str) -> None:
    """Give the role the application runs as exactly what it needs, and no more: read and
    write the state tables, only INSERT and SELECT on the append-only ones (the ledgers,
    the seals, the access log, the ledger archive's registry and heads), read the migration
    record, use the sequences. It owns nothing, so it can neither TRUNCATE nor disable a
    trigger. The partitioned tables are reached through their parents only (nothing on a
    partition itself); it may execute the owner's functions that make partitions and drop
    the outbox's old months (history migration 0017), not those that drop and restore
    ledger months (0018). Run as the tables' owner, after
    every migration (history.apps)."""
    name = sql.Identifier(role)
    ledgers = sql.SQL(", ").join(sql.Identifier(table) for table in APPEND_ONLY_TABLES)
    statements = [
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name),
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(name),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
            name
        ),
        sql.SQL("REVOKE UPDATE, DELETE ON {} FROM {}").format(ledgers, name),
        sql.SQL("REVOKE INSERT, UPDATE, DELETE ON django_migrations FROM {}").format(name),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(name),
        *(
            sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), name)
            for function in PARTITION_FUNCTIONS
        ),
        *(
            sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM {}").format(sql.SQL(function), name)
            for function in OWNER_ONLY_FUNCTIONS
        ),
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = ANY(%s::regclass[])",
            [list(PARTITIONED_TABLES)],
        )
        partitions = [row[0] for row in cursor.fetchall()]
        if partitions:
            statements.append(
                sql.SQL("REVOKE ALL ON {} FROM {}").format(
                    sql.SQL(", ").join(sql.Identifier(table) for table in partitions), name
                )
            )
        for statement in statements:
            cursor.execute(statement)
