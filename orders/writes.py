"""Where every order command ends: the new order versions, the new and changed lines, one
ledger row per changed line and one outbox event per command, written in the caller's
transaction. Single commands (orders.services) and bulk batches (orders.bulk) both finish
here, so one function decides what a recorded change looks like.

On PostgreSQL the whole write is one statement, whatever the number of rows: each table's
rows travel as arrays (unnest) or as one JSON document (jsonb_to_recordset), so the text and
the parameter count never change, and the command costs one round trip. Elsewhere (the
embedded SQLite default) the same rows go through the ORM.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import orjson
from django.db import connection, transaction

from config import metrics
from history.audit import Audit
from history.events import LineChange, order_event_data
from history.models import OrderLedgerEntry, OutboxEvent
from history.relay import outbox_kick
from orders.cache import order_cache_invalidate_many
from orders.models import Order, OrderLine


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One command on one order: it left the order at `version` and `status`, and its
    `changes` become ledger rows that share the event's id."""

    order_id: int
    version: int
    status: str
    reference: str
    customer_id: int | None
    event_type: str
    changes: Sequence[LineChange]
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def payload(self, audit: Audit, now: datetime) -> dict:
        return order_event_data(
            order_id=self.order_id,
            version=self.version,
            status=self.status,
            reference=self.reference,
            customer_id=self.customer_id,
            changes=self.changes,
            audit=audit,
            occurred_at=now,
        )


def order_changes_write(
    *,
    events: Sequence[OrderEvent],
    updated_lines: Mapping[int, int],
    new_lines: Mapping[tuple[int, int], int],
    audit: Audit,
    now: datetime,
    update_orders: bool = True,
) -> None:
    """Write `events` (in order) with the line quantities they produced: `updated_lines` is
    line id -> quantity, `new_lines` is (order id, product id) -> quantity. Each order gets
    the version and status of its last event, unless `update_orders` is False (a new order,
    whose row was just inserted as it is). Must run inside the caller's transaction, after
    the orders were locked. On commit: the relay is kicked, the cached orders are replaced
    by tombstones, and the adjustments are counted."""
    if not events:
        return
    orders = {}
    if update_orders:
        orders = {event.order_id: (event.version, event.status) for event in events}
    writer = _write_postgresql if connection.vendor == "postgresql" else _write_portable
    writer(
        orders=orders,
        updated_lines=updated_lines,
        new_lines=new_lines,
        events=events,
        audit=audit,
        now=now,
    )
    transaction.on_commit(outbox_kick)
    if orders:
        versions = {order_id: version for order_id, (version, _) in orders.items()}
        transaction.on_commit(partial(order_cache_invalidate_many, versions))
    rows = sum(len(event.changes) for event in events)
    transaction.on_commit(partial(metrics.adjustments_recorded, audit.source, "order", rows))


_POSTGRESQL_WRITE = f"""\
WITH orders_updated AS (
    UPDATE {Order._meta.db_table} AS o SET version = v.version, status = v.status, updated_at = %s
    FROM unnest(%s::bigint[], %s::integer[], %s::text[]) AS v(id, version, status)
    WHERE o.id = v.id
), lines_updated AS (
    UPDATE {OrderLine._meta.db_table} AS l SET quantity = v.quantity
    FROM unnest(%s::bigint[], %s::integer[]) AS v(id, quantity) WHERE l.id = v.id
), lines_added AS (
    INSERT INTO {OrderLine._meta.db_table} (order_id, product_id, quantity)
    SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::integer[])
), ledger_added AS (
    INSERT INTO {OrderLedgerEntry._meta.db_table} (event_id, order_id, product_id, sku, version,
        event_type, delta, quantity_before, quantity_after, actor, source, reason,
        occurred_at, correlation_id, idempotency_key)
    SELECT r.e, r.o, r.p, r.s, r.v, r.t, r.a - r.b, r.b, r.a, %s, %s, %s, %s, %s, %s
    FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (e uuid, o bigint, p bigint, s text,
        v integer, t text, b integer, a integer)) WITH ORDINALITY AS r(e, o, p, s, v, t, b, a, n)
    ORDER BY r.n
)
INSERT INTO {OutboxEvent._meta.db_table} (event_id, aggregate_type, aggregate_id, aggregate_version,
    event_type, payload, created_at, attempts, last_error)
SELECT r.e, 'order', r.a, r.v, r.t, r.p, %s, 0, ''
FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (e uuid, a text, v integer, t text, p jsonb))
    WITH ORDINALITY AS r(e, a, v, t, p, n)
ORDER BY r.n
"""


def _write_postgresql(*, orders, updated_lines, new_lines, events, audit, now) -> None:
    # Ledger and outbox rows go as one JSON document each: far cheaper to send than text
    # arrays of JSON payloads. Ids are taken in input order (ORDER BY r.n), so the ledger
    # reads back in the order the commands were applied.
    ledger = [
        {
            "e": event.event_id,
            "o": event.order_id,
            "p": change.product_id,
            "s": change.sku,
            "v": event.version,
            "t": event.event_type,
            "b": change.before,
            "a": change.after,
        }
        for event in events
        for change in event.changes
    ]
    outbox = [
        {
            "e": event.event_id,
            "a": str(event.order_id),
            "v": event.version,
            "t": event.event_type,
            "p": event.payload(audit, now),
        }
        for event in events
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            _POSTGRESQL_WRITE,
            [
                now,
                list(orders),
                [version for version, _ in orders.values()],
                [status for _, status in orders.values()],
                list(updated_lines),
                list(updated_lines.values()),
                [order_id for order_id, _ in new_lines],
                [product_id for _, product_id in new_lines],
                list(new_lines.values()),
                audit.actor,
                str(audit.source),
                audit.reason,
                now,
                audit.correlation_id,
                audit.idempotency_key,
                orjson.dumps(ledger).decode(),
                now,
                orjson.dumps(outbox).decode(),
            ],
        )


def _write_portable(*, orders, updated_lines, new_lines, events, audit, now) -> None:
    if orders:
        Order.objects.bulk_update(
            [
                Order(pk=order_id, version=version, status=status, updated_at=now)
                for order_id, (version, status) in orders.items()
            ],
            ["version", "status", "updated_at"],
        )
    if updated_lines:
        OrderLine.objects.bulk_update(
            [OrderLine(pk=line_id, quantity=q) for line_id, q in updated_lines.items()],
            ["quantity"],
        )
    if new_lines:
        OrderLine.objects.bulk_create(
            OrderLine(order_id=order_id, product_id=product_id, quantity=q)
            for (order_id, product_id), q in new_lines.items()
        )
    OrderLedgerEntry.objects.bulk_create(
        OrderLedgerEntry(
            event_id=event.event_id,
            order_id=event.order_id,
            product_id=change.product_id,
            sku=change.sku,
            version=event.version,
            event_type=event.event_type,
            delta=change.delta,
            quantity_before=change.before,
            quantity_after=change.after,
            actor=audit.actor,
            source=audit.source,
            reason=audit.reason,
            occurred_at=now,
            correlation_id=audit.correlation_id,
            idempotency_key=audit.idempotency_key,
        )
        for event in events
        for change in event.changes
    )
    OutboxEvent.objects.bulk_create(
        OutboxEvent(
            event_id=event.event_id,
            aggregate_type="order",
            aggregate_id=str(event.order_id),
            aggregate_version=event.version,
            event_type=event.event_type,
            payload=event.payload(audit, now),
            created_at=now,
        )
        for event in events
    )
