"""The recorder: the only code that writes ledger rows and outbox events.

Every command, whatever it changes (an order, a stock level, a reservation, a transfer),
ends with one call to `changes_record`, inside the command's transaction, after its rows
were locked. One call is one SQL statement, whatever the number of rows: the caller's own
state changes (`StateWrite`: the new order versions and lines, the new stock quantities)
run as data-modifying parts of the same statement as the ledger and outbox inserts, and
each table's rows travel as one JSON document (jsonb_to_recordset), so the statement text
depends only on which tables a command writes, and a command costs one round trip.

On commit: the relay is kicked, cached aggregates are replaced by tombstones of their new
version, and the ledger rows are counted.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import orjson
from django.db import connection, transaction

from history import metrics
from history.audit import Audit
from history.cache import cache_tombstones
from history.events import Event
from history.models import OrderLedgerEntry, OutboxEvent, StockLedgerEntry
from history.relay import outbox_kick


@dataclass(frozen=True, slots=True)
class StateWrite:
    """A caller's UPDATE or INSERT (no trailing semicolon, `%s` placeholders) that runs in
    the recorder's statement, so the state and its record are written together."""

    sql: str
    params: Sequence


_AUDIT = "%s, %s, %s, %s, %s, %s"  # actor, source, reason, occurred_at, correlation, key

_ORDER_LEDGER = f"""\
INSERT INTO {OrderLedgerEntry._meta.db_table} (event_id, order_id, product_id, sku, version,
    event_type, delta, quantity_before, quantity_after,
    actor, source, reason, occurred_at, correlation_id, idempotency_key)
SELECT r.e, r.o, r.p, r.s, r.v, r.t, r.a - r.b, r.b, r.a, {_AUDIT}
FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (e uuid, o bigint, p bigint, s text,
    v integer, t text, b integer, a integer)) WITH ORDINALITY AS r(e, o, p, s, v, t, b, a, n)
ORDER BY r.n"""

_STOCK_LEDGER = f"""\
INSERT INTO {StockLedgerEntry._meta.db_table} (event_id, product_id, sku, location_id,
    location_code, movement, version, delta_on_hand, delta_reserved, delta_in_transit,
    delta_backorder, on_hand_after, reserved_after, in_transit_after, backorder_after,
    reference_type, reference_id,
    actor, source, reason, occurred_at, correlation_id, idempotency_key)
SELECT r.e, r.p, r.s, r.l, r.lc, r.m, r.v, r.dh, r.dr, r.dt, r.db, r.h, r.r, r.t, r.b,
    r.rt, r.ri, {_AUDIT}
FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (e uuid, p bigint, s text, l bigint,
    lc text, m text, v integer, dh bigint, dr bigint, dt bigint, db bigint, h bigint,
    r bigint, t bigint, b bigint, rt text, ri text))
    WITH ORDINALITY AS r(e, p, s, l, lc, m, v, dh, dr, dt, db, h, r, t, b, rt, ri, n)
ORDER BY r.n"""

_OUTBOX = f"""\
INSERT INTO {OutboxEvent._meta.db_table} (event_id, aggregate_type, aggregate_id,
    aggregate_version, event_type, payload, created_at, attempts, last_error)
SELECT r.e, r.at, r.a, r.v, r.t, r.p, %s, 0, ''
FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (e uuid, at text, a text, v integer, t text,
    p jsonb)) WITH ORDINALITY AS r(e, at, a, v, t, p, n)
ORDER BY r.n"""


def changes_record(
    *, events: Sequence[Event], audit: Audit, now: datetime, state: Sequence[StateWrite] = ()
) -> None:
    """Write `state` and, for each event in order, its ledger rows and its outbox row, in
    one statement in the caller's transaction. Ids follow the input order, so the ledger
    reads back in the order the commands were applied."""
    if not events and not state:
        return
    order_rows = [
        {
            "e": event.event_id,
            "o": int(event.aggregate_id),
            "p": line.product_id,
            "s": line.sku,
            "v": event.version,
            "t": event.event_type,
            "b": line.before,
            "a": line.after,
        }
        for event in events
        for line in event.lines
    ]
    stock_rows = [
        {
            "e": event.event_id,
            "p": change.product_id,
            "s": change.sku,
            "l": change.location_id,
            "lc": change.location_code,
            "m": change.movement,
            "v": change.version,
            "dh": change.on_hand,
            "dr": change.reserved,
            "dt": change.in_transit,
            "db": change.backorder,
            "h": change.on_hand_after,
            "r": change.reserved_after,
            "t": change.in_transit_after,
            "b": change.backorder_after,
            "rt": event.reference_type,
            "ri": event.reference_id,
        }
        for event in events
        for change in event.stock
    ]
    outbox_rows = [
        {
            "e": event.event_id,
            "at": event.aggregate_type,
            "a": event.aggregate_id,
            "v": event.version,
            "t": event.event_type,
            "p": event.payload,
        }
        for event in events
    ]
    audit_params = [
        audit.actor,
        str(audit.source),
        audit.reason,
        now,
        audit.correlation_id,
        audit.idempotency_key,
    ]
    # Each part runs only when it has rows, so a command touches only the tables it writes;
    # the statement texts stay few (prepared once per connection).
    parts = [(write.sql, list(write.params)) for write in state]
    if order_rows:
        parts.append((_ORDER_LEDGER, [*audit_params, orjson.dumps(order_rows).decode()]))
    if stock_rows:
        parts.append((_STOCK_LEDGER, [*audit_params, orjson.dumps(stock_rows).decode()]))
    if outbox_rows:
        parts.append((_OUTBOX, [now, orjson.dumps(outbox_rows).decode()]))
    *first, (last, _) = parts
    sql = "".join(f"part_{n} AS ({part}), " for n, (part, _) in enumerate(first))
    sql = (f"WITH {sql[:-2]} " if first else "") + last
    with connection.cursor() as cursor:
        cursor.execute(sql, [param for _, params in parts for param in params])
    _after_commit(events, audit, order_rows=len(order_rows), stock_rows=len(stock_rows))


def _after_commit(events: Sequence[Event], audit: Audit, *, order_rows: int, stock_rows: int):
    if not events:
        return
    transaction.on_commit(outbox_kick)
    versions = {(event.aggregate_type, event.aggregate_id): event.version for event in events}
    transaction.on_commit(partial(cache_tombstones, versions))
    for kind, rows in (("order", order_rows), ("stock", stock_rows)):
        if rows:
            transaction.on_commit(partial(metrics.adjustments_recorded, audit.source, kind, rows))
