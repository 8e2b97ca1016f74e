"""The recorder: the only code that writes ledger rows and outbox events.

Every command, whatever it changes (an order, a stock level, a reservation, a transfer),
ends with one call to `changes_record`, inside the command's transaction, after its rows
were locked. One call is one SQL statement, whatever the number of rows: the caller's own
state changes (`StateWrite`: the new order versions and lines, the new stock quantities)
run as data-modifying parts of the same statement as the ledger and outbox inserts, and
each table's rows travel as one JSON document (jsonb_to_recordset), so the statement text
depends only on which tables a command writes, and a command costs one round trip.

Each ledger row is chained (history.chain) to the previous row of its order or stock level:
the caller passes the chain heads it read under the aggregates' locks (`heads`), the
recorder hashes the rows in order, and the caller's state write stores the new heads where
it names them with a `ChainHeads` parameter. Chaining happens here and nowhere else, so a
bulk request and a single change produce the same hashes.

The outbox rows carry the W3C trace context (`traceparent`, `tracestate`) of the span that
records them, the service's in the request's trace, when tracing is on (config.tracing).

On commit: the relay is kicked, cached aggregates are replaced by tombstones of their new
version, and the ledger rows are counted.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import orjson
from django.db import connection, transaction

from config.tracing import trace_context
from history import metrics
from history.audit import Audit
from history.cache import cache_tombstones
from history.chain import order_entry_hash, stock_entry_hash
from history.events import Event
from history.models import OrderLedgerEntry, OutboxEvent, StockLedgerEntry
from history.relay import outbox_kick


@dataclass(frozen=True, slots=True)
class StateWrite:
    """A caller's UPDATE or INSERT (no trailing semicolon, `%s` placeholders) that runs in
    the recorder's statement, so the state and its record are written together."""

    sql: str
    params: Sequence


ChainKey = tuple  # ("order", order id) or ("stock", product id, location id)


@dataclass(frozen=True, slots=True)
class ChainHeads:
    """A `StateWrite` parameter that the recorder fills in: the chain heads these
    aggregates are left with, in this order (a bytea[])."""

    keys: Sequence[ChainKey]


# actor, source, reason code, reason, occurred_at, correlation id, idempotency key
_AUDIT = "%s, %s, %s, %s, %s, %s, %s"

_ORDER_LEDGER = f"""\
INSERT INTO {OrderLedgerEntry._meta.db_table} (event_id, order_id, product_id, sku, version,
    event_type, delta, quantity_before, quantity_after, prev_hash, hash,
    actor, source, reason_code, reason, occurred_at, correlation_id, idempotency_key)
SELECT r.e, r.o, r.p, r.s, r.v, r.t, r.a - r.b, r.b, r.a, decode(r.ph, 'hex'),
    decode(r.h, 'hex'), {_AUDIT}
FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (e uuid, o bigint, p bigint, s text,
    v integer, t text, b integer, a integer, ph text, h text))
    WITH ORDINALITY AS r(e, o, p, s, v, t, b, a, ph, h, n)
ORDER BY r.n"""

_STOCK_LEDGER = f"""\
INSERT INTO {StockLedgerEntry._meta.db_table} (event_id, product_id, sku, location_id,
    location_code, movement, version, delta_on_hand, delta_reserved, delta_in_transit,
    delta_backorder, on_hand_after, reserved_after, in_transit_after, backorder_after,
    reference_type, reference_id, prev_hash, hash,
    actor, source, reason_code, reason, occurred_at, correlation_id, idempotency_key)
SELECT r.e, r.p, r.s, r.l, r.lc, r.m, r.v, r.dh, r.dr, r.dt, r.db, r.h, r.r, r.t, r.b,
    r.rt, r.ri, decode(r.ph, 'hex'), decode(r.hh, 'hex'), {_AUDIT}
FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (e uuid, p bigint, s text, l bigint,
    lc text, m text, v integer, dh bigint, dr bigint, dt bigint, db bigint, h bigint,
    r bigint, t bigint, b bigint, rt text, ri text, ph text, hh text))
    WITH ORDINALITY AS r(e, p, s, l, lc, m, v, dh, dr, dt, db, h, r, t, b, rt, ri, ph, hh, n)
ORDER BY r.n"""

# The trace context is '' when tracing is off (config.tracing).
_OUTBOX = f"""\
INSERT INTO {OutboxEvent._meta.db_table} (event_id, aggregate_type, aggregate_id,
    aggregate_version, event_type, payload, created_at, attempts, last_error, traceparent,
    tracestate)
SELECT r.e, r.at, r.a, r.v, r.t, r.p, %s, 0, '', %s, %s
FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (e uuid, at text, a text, v integer, t text,
    p jsonb)) WITH ORDINALITY AS r(e, at, a, v, t, p, n)
ORDER BY r.n"""


def changes_record(
    *,
    events: Sequence[Event],
    audit: Audit,
    now: datetime,
    state: Sequence[StateWrite] = (),
    heads: Mapping[ChainKey, bytes] | None = None,
) -> None:
    """Write `state` and, for each event in order, its ledger rows and its outbox row, in
    one statement in the caller's transaction. Ids follow the input order, so the ledger
    reads back in the order the commands were applied. `heads` holds the current chain
    head of every order and stock level the events write ledger rows for, read under its
    lock."""
    if not events and not state:
        return
    chains = dict(heads or {})
    recorded = {
        "actor": audit.actor,
        "source": str(audit.source),
        "reason_code": audit.recorded_reason_code,
        "reason": audit.reason,
        "occurred_at": now,
        "correlation_id": audit.correlation_id,
        "idempotency_key": audit.idempotency_key,
    }
    order_rows, stock_rows = [], []
    for event in events:
        event_id = str(event.event_id)
        for line in event.lines:
            key = ("order", int(event.aggregate_id))
            prev = _head(chains, key)
            chains[key] = digest = order_entry_hash(
                prev,
                {
                    **recorded,
                    "event_id": event_id,
                    "order_id": key[1],
                    "version": event.version,
                    "event_type": event.event_type,
                    "sku": line.sku,
                    "delta": line.after - line.before,
                    "quantity_before": line.before,
                    "quantity_after": line.after,
                },
            )
            order_rows.append(
                {
                    "e": event_id,
                    "o": key[1],
                    "p": line.product_id,
                    "s": line.sku,
                    "v": event.version,
                    "t": event.event_type,
                    "b": line.before,
                    "a": line.after,
                    "ph": prev.hex(),
                    "h": digest.hex(),
                }
            )
        for change in event.stock:
            key = ("stock", change.product_id, change.location_id)
            prev = _head(chains, key)
            chains[key] = digest = stock_entry_hash(
                prev,
                {
                    **recorded,
                    "event_id": event_id,
                    "sku": change.sku,
                    "location_code": change.location_code,
                    "version": change.version,
                    "movement": change.movement,
                    "delta_on_hand": change.on_hand,
                    "delta_reserved": change.reserved,
                    "delta_in_transit": change.in_transit,
                    "delta_backorder": change.backorder,
                    "on_hand_after": change.on_hand_after,
                    "reserved_after": change.reserved_after,
                    "in_transit_after": change.in_transit_after,
                    "backorder_after": change.backorder_after,
                    "reference_type": event.reference_type,
                    "reference_id": event.reference_id,
                },
            )
            stock_rows.append(
                {
                    "e": event_id,
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
                    "ph": prev.hex(),
                    "hh": digest.hex(),
                }
            )
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
    audit_params = list(recorded.values())
    # Each part runs only when it has rows, so a command touches only the tables it writes;
    # the statement texts stay few (prepared once per connection).
    parts = [(write.sql, _filled(write.params, chains)) for write in state]
    if order_rows:
        parts.append((_ORDER_LEDGER, [*audit_params, orjson.dumps(order_rows).decode()]))
    if stock_rows:
        parts.append((_STOCK_LEDGER, [*audit_params, orjson.dumps(stock_rows).decode()]))
    if outbox_rows:
        # The span recording this (the service's, in the request's trace) travels with
        # the events: the relay links to it, the consumers continue it.
        traceparent, tracestate = trace_context()
        rows = orjson.dumps(outbox_rows).decode()
        parts.append((_OUTBOX, [now, traceparent, tracestate, rows]))
    *first, (last, _) = parts
    sql = "".join(f"part_{n} AS ({part}), " for n, (part, _) in enumerate(first))
    sql = (f"WITH {sql[:-2]} " if first else "") + last
    with connection.cursor() as cursor:
        cursor.execute(sql, [param for _, params in parts for param in params])
    _after_commit(events, audit, order_rows=len(order_rows), stock_rows=len(stock_rows))


def _head(chains: dict[ChainKey, bytes], key: ChainKey) -> bytes:
    try:
        return chains[key]
    except KeyError:
        raise ValueError(f"no chain head given for {key}: read it under the lock") from None


def _filled(params: Sequence, chains: dict[ChainKey, bytes]) -> list:
    return [
        [chains[key] for key in param.keys] if isinstance(param, ChainHeads) else param
        for param in params
    ]


def _after_commit(events: Sequence[Event], audit: Audit, *, order_rows: int, stock_rows: int):
    if not events:
        return
    transaction.on_commit(outbox_kick)
    versions = {(event.aggregate_type, event.aggregate_id): event.version for event in events}
    transaction.on_commit(partial(cache_tombstones, versions))
    for kind, rows in (("order", order_rows), ("stock", stock_rows)):
        if rows:
            transaction.on_commit(partial(metrics.adjustments_recorded, audit.source, kind, rows))
