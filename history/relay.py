"""The outbox relay: carries committed outbox rows to the broker, at least once and in
version order per aggregate.

One batch is one database transaction:
1. claim up to N deliverable rows in id order with FOR UPDATE SKIP LOCKED, so relays running
   side by side never take the same row;
2. hold back any row whose earlier, still-unpublished sibling (same aggregate) is not in
   this batch: another relay has it, or it is waiting to be retried;
3. publish in waves, the k-th event of every aggregate in wave k, and wait for the broker's
   publisher confirms of a wave before sending the next, so version N+1 never reaches the
   broker before version N is confirmed;
4. mark confirmed rows published; record the error, back off exponentially, and after the
   last attempt dead-letter the rest. Commit.
A relay that dies mid-batch rolls back: its rows are simply claimed again (at least once).
"""

import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

import amqp
import orjson
from amqp.method_framing import frame_writer
from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Lookup
from django.db.models.base import ModelState
from django.utils import timezone
from kombu import Connection, Exchange, Producer

from config import tracing
from config.logging import event_fields
from history import metrics
from history.models import OutboxEvent

logger = logging.getLogger(__name__)

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
RELAY_TASK = "history.tasks.relay_outbox"


class BrokerUnavailable(Exception):
    """The broker could not be reached or the connection broke mid-batch."""


@dataclass
class RelayResult:
    published: int = 0
    failed: int = 0
    dead_lettered: int = 0
    held_back: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: "RelayResult") -> None:
        self.published += other.published
        self.failed += other.failed
        self.dead_lettered += other.dead_lettered
        self.held_back += other.held_back
        self.batches += other.batches
        self.errors += other.errors


def cloudevent(event: OutboxEvent) -> bytes:
    envelope = {
        "specversion": "1.0",
        "id": str(event.event_id),
        "source": f"{settings.EVENT_SOURCE}/{event.aggregate_type}s",
        "type": event.event_type,
        "subject": event.aggregate_id,
        "time": event.created_at.isoformat(),
        "datacontenttype": "application/json",
        "data": event.payload,
    }
    # The CloudEvents distributed-tracing extension: the trace context of the span that
    # recorded the event, when it was recorded with tracing on.
    if event.traceparent:
        envelope["traceparent"] = event.traceparent
        if event.tracestate:
            envelope["tracestate"] = event.tracestate
    return orjson.dumps(envelope)


def trace_headers(event: OutboxEvent) -> dict | None:
    """The same trace context as AMQP headers (`traceparent`, `tracestate`), or None."""
    if not event.traceparent:
        return None
    headers = {"traceparent": event.traceparent}
    if event.tracestate:
        headers["tracestate"] = event.tracestate
    return headers


class _Frames:
    """A stand-in for py-amqp's transport that keeps what a frame writer writes, so that a
    wave's frames go to the socket in one write instead of one per message. Copies: py-amqp
    packs every frame into one buffer it reuses."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def write(self, data) -> None:
        self.chunks.append(bytes(data))

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def _transport_options(url: str) -> dict:
    return settings.FILESYSTEM_TRANSPORT_OPTIONS if url.startswith("filesystem") else {}


class Publisher:
    """A broker connection that publishes waves of events and reports, per event, whether
    the broker confirmed it. On AMQP it uses publisher confirms, one wait per wave."""

    def __init__(self, url: str | None = None, exchange: str | None = None):
        self.url = url or settings.EVENT_BUS_URL
        self.exchange_name = exchange or settings.EVENT_EXCHANGE
        self.connection: Connection | None = None
        self.channel = None
        self.producer: Producer | None = None
        self._acked: set[int] = set()
        self._nacked: set[int] = set()
        self._unsettled: set[int] = set()  # the current wave's tags not yet (n)acked
        self._next_tag = 1
        self._frames = _Frames()
        self._buffered_writer = None

    @property
    def confirms(self) -> bool:
        return self.connection is not None and self.connection.transport.driver_type == "amqp"

    def connect(self) -> None:
        if self.connection is not None:
            return
        try:
            connection = Connection(
                self.url,
                connect_timeout=settings.RELAY_CONNECT_TIMEOUT,
                transport_options=_transport_options(self.url),
                heartbeat=0,
            )
            connection.ensure_connection(max_retries=1, timeout=settings.RELAY_CONNECT_TIMEOUT)
            channel = connection.channel()
            exchange = Exchange(self.exchange_name, type="topic", durable=True, auto_delete=False)
            exchange(channel).declare()
            if connection.transport.driver_type == "amqp":
                channel.confirm_select()
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
                self._next_tag = 1
                self._frames.chunks.clear()
                self._buffered_writer = frame_writer(channel.connection, self._frames)
        except Exception as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.connection, self.channel = connection, channel
        self.producer = Producer(channel, exchange=exchange, auto_declare=False)

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception:
                logger.debug("error while closing the broker connection", exc_info=True)
        self.connection = self.channel = self.producer = self._buffered_writer = None

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(self._acked, delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(self._nacked, delivery_tag, multiple)

    def _settle(self, into: set[int], delivery_tag: int, multiple: bool) -> None:
        if multiple:
            settled = {t for t in self._unsettled if t <= delivery_tag}
        elif delivery_tag in self._unsettled:
            settled = {delivery_tag}
        else:
            return
        self._unsettled -= settled
        into |= settled

    def publish_wave(self, events: list[OutboxEvent]) -> dict[int, str | None]:
        """Publish events and return {outbox id: None if confirmed else the error}."""
        self.connect()
        started = time.monotonic()
        try:
            if not self.confirms:
                for event in events:
                    self._send(event)
                metrics.wave_published(time.monotonic() - started)
                return {event.pk: None for event in events}
            tags: dict[int, int] = {}
            self._acked.clear()
            self._nacked.clear()
            self._unsettled = set()
            # The wave's frames are written into one buffer and sent in one socket write
            # (py-amqp writes each message on its own: a sendall per event, the relay's
            # largest single cost per event in the profile); then the confirms are read.
            connection = self.channel.connection
            direct, connection.frame_writer = connection.frame_writer, self._buffered_writer
            try:
                for event in events:
                    tag = self._next_tag
                    self._next_tag += 1
                    tags[tag] = event.pk
                    self._unsettled.add(tag)
                    self._send(event)
            finally:
                connection.frame_writer = direct
            connection.transport.write(self._frames.take())
            deadline = time.monotonic() + settings.RELAY_CONFIRM_TIMEOUT
            while self._unsettled:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BrokerUnavailable("timed out waiting for publisher confirms")
                self.connection.drain_events(timeout=remaining)
            metrics.wave_published(time.monotonic() - started)
            outcome = {
                event_id: (None if tag in self._acked else "the broker refused (nack)")
                for tag, event_id in tags.items()
            }
            self._acked.clear()
            self._nacked.clear()
            return outcome
        except BrokerUnavailable:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _send(self, event: OutboxEvent) -> None:
        if self.confirms:
            # py-amqp directly: the kombu producer's per-message overhead halves the rate.
            self.channel.basic_publish(
                amqp.Message(
                    cloudevent(event),
                    content_type=CLOUDEVENTS_CONTENT_TYPE,
                    content_encoding="utf-8",
                    delivery_mode=2,
                    message_id=str(event.event_id),
                    type=event.event_type,
                    timestamp=int(event.created_at.timestamp()),
                    application_headers=trace_headers(event),
                ),
                exchange=self.exchange_name,
                routing_key=event.event_type,
            )
            return
        self.producer.publish(
            cloudevent(event),
            routing_key=event.event_type,
            content_type=CLOUDEVENTS_CONTENT_TYPE,
            content_encoding="utf-8",
            delivery_mode=2,
            message_id=str(event.event_id),
            type=event.event_type,
            timestamp=int(event.created_at.timestamp()),
            headers=trace_headers(event),
            retry=False,
        )


_FIELDS = [f.attname for f in OutboxEvent._meta.concrete_fields]
_TABLE = OutboxEvent._meta.db_table

# Written out because the ORM's NOT EXISTS probe reads every earlier pending event of the
# candidate's aggregate (a sequential scan of the unpublished
# rows, or a heap fetch per earlier event), once per batch or once per candidate, so after
# a bulk load draining the backlog slowed down as it grew (make bench: the relay ended a bulk
# run 58 s behind with 178,000 events pending, ~25 s and ~80,000 after this). Here the stuck
# aggregates (an event dead-lettered or waiting to retry; usually none; published events
# are neither, by constraint) are read first, from the partial index
# outbox_aggregate_stuck_idx that holds only such rows, and the candidates are checked
# against that small set. Same rows, same order, same locks. The stuck set's read does not
# depend on statistics, but the candidates' does: see _claim.
_CLAIM_SQL = f"""
WITH stuck AS (
    SELECT u.aggregate_type, u.aggregate_id, min(u.id) AS first_id
    FROM "{_TABLE}" u
    WHERE (u.dead_lettered_at IS NOT NULL OR u.next_attempt_at IS NOT NULL)
      AND (u.dead_lettered_at IS NOT NULL OR u.next_attempt_at > %(now)s)
    GROUP BY u.aggregate_type, u.aggregate_id
)
SELECT {", ".join(f'o."{f.column}"' for f in OutboxEvent._meta.concrete_fields)}
FROM "{_TABLE}" o
WHERE o.published_at IS NULL AND o.dead_lettered_at IS NULL
  AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= %(now)s)
  AND NOT EXISTS (
      SELECT 1 FROM stuck
      WHERE stuck.aggregate_type = o.aggregate_type AND stuck.aggregate_id = o.aggregate_id
        AND stuck.first_id < o.id)
ORDER BY o.id
LIMIT %(limit)s
FOR UPDATE OF o SKIP LOCKED
"""

# The unpublished rows, not in this batch, that come before a claimed row of the same
# aggregate: the first of them per aggregate. One probe of outbox_aggregate_pending_idx per
# claimed aggregate, where the ORM's `aggregate_id IN (...)` walks the index for every
# unpublished id below the batch (dead entries of just-published rows included), and its
# ~1,000 literal parameters cost more to build in Python than the query costs to run.
_EARLIER_SQL = f"""
SELECT o.aggregate_type, o.aggregate_id, min(o.id)
FROM "{_TABLE}" o
JOIN (SELECT DISTINCT * FROM unnest(%s::text[], %s::text[])) AS claimed (type, id)
  ON o.aggregate_type = claimed.type AND o.aggregate_id = claimed.id
WHERE o.published_at IS NULL AND o.id < %s AND NOT (o.id = ANY(%s))
GROUP BY o.aggregate_type, o.aggregate_id
"""


_PAYLOAD_FIELD = OutboxEvent._meta.get_field("payload")


def _payload(raw):
    """JSONField.from_db_value, with orjson where it can (same dict, same key order)."""
    if isinstance(raw, str):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return _PAYLOAD_FIELD.from_db_value(raw, None, connection)


def _claim(now, limit: int) -> list[OutboxEvent]:
    """Lock up to `limit` deliverable rows in id order, skipping rows other relays hold."""
    with connection.cursor() as cursor:
        # The outbox's statistics lag behind a bulk load (until autovacuum analyzes it).
        # With 425,000 rows pending and a handful estimated, the planner joined and then
        # sorted every pending row for each batch of 500: 1-3.7 s a batch. Without a sort
        # the only plan left walks the id index and stops at the limit: 2 ms with fresh
        # statistics, 16 ms with stale ones (bench/README.md, "The relay after the run").
        # SET LOCAL lasts until the claim's transaction ends.
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(_CLAIM_SQL, {"now": now, "limit": limit})
        rows = cursor.fetchall()
    alias = connection.alias
    return [_event(row, alias) for row in rows]


_PAYLOAD_INDEX = _FIELDS.index("payload")
_new_event = OutboxEvent.__new__


def _event(row: tuple, alias: str) -> OutboxEvent:
    """An OutboxEvent as `Model.from_db` would build it from a row of every concrete field,
    without `Model.__init__`'s per-field work (no signals: nothing listens to init of
    OutboxEvent)."""
    event = _new_event(OutboxEvent)
    values = event.__dict__
    values.update(zip(_FIELDS, row, strict=True))
    values["payload"] = _payload(row[_PAYLOAD_INDEX])
    state = values["_state"] = ModelState()
    state.adding = False
    state.db = alias
    return event


def _first_foreign(
    by_aggregate: dict[tuple[str, str], list[OutboxEvent]], claimed: list[int]
) -> dict[tuple[str, str], int]:
    with connection.cursor() as cursor:
        cursor.execute(
            _EARLIER_SQL,
            [[t for t, _ in by_aggregate], [i for _, i in by_aggregate], max(claimed), claimed],
        )
        earlier = cursor.fetchall()
    first: dict[tuple[str, str], int] = {}
    for aggregate_type, aggregate_id, pk in earlier:
        key = (aggregate_type, aggregate_id)
        if key in by_aggregate:
            first[key] = min(pk, first.get(key, pk))
    return first


def _in_aggregate_order(rows: list[OutboxEvent]) -> tuple[list[list[OutboxEvent]], int]:
    """Split the claimed rows into waves (k-th event of each aggregate in wave k), dropping
    every row whose earlier unpublished sibling is not in this batch."""
    by_aggregate: dict[tuple[str, str], list[OutboxEvent]] = defaultdict(list)
    for row in rows:
        by_aggregate[(row.aggregate_type, row.aggregate_id)].append(row)
    first_foreign = _first_foreign(by_aggregate, [row.pk for row in rows])
    waves: list[list[OutboxEvent]] = []
    held_back = 0
    for key, events in by_aggregate.items():
        limit = first_foreign.get(key)
        for position, event in enumerate(events):
            if limit is not None and event.pk > limit:
                held_back += len(events) - position
                break
            if position == len(waves):
                waves.append([])
            waves[position].append(event)
    return waves, held_back


class _AnyOf(Lookup):
    """`lhs = ANY(array)`: one parameter for the whole list."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*params, list(self.rhs))


def _mark_published(pks: list[int], *, since) -> None:
    """`since` (the oldest claimed row's created_at) lets PostgreSQL skip the outbox's
    older monthly partitions instead of probing each one's index for the ids."""
    OutboxEvent.objects.filter(_AnyOf(F("pk"), pks), created_at__gte=since).update(
        published_at=timezone.now(), next_attempt_at=None
    )


def _backoff(attempts: int) -> timedelta:
    seconds = min(
        settings.RELAY_BACKOFF_BASE_SECONDS * 2 ** (attempts - 1),
        settings.RELAY_BACKOFF_MAX_SECONDS,
    )
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


def _log(event: OutboxEvent) -> dict:
    """A log line's fields for one event (config.logging): its id, type, aggregate and the
    request that recorded it."""
    return event_fields(
        event_id=event.event_id,
        event_type=event.event_type,
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        correlation_id=(event.payload or {}).get("correlation_id", ""),
    )


def _record_failures(events: list[OutboxEvent], error: str, now, result: RelayResult) -> None:
    for event in events:
        event.attempts += 1
        event.last_error = error[:2000]
        if event.attempts >= settings.RELAY_MAX_ATTEMPTS:
            event.dead_lettered_at = now
            event.next_attempt_at = None
            result.dead_lettered += 1
            logger.error(
                "outbox event %s dead-lettered: %s", event.event_id, error, extra=_log(event)
            )
        else:
            event.next_attempt_at = now + _backoff(event.attempts)
            result.failed += 1
    OutboxEvent.objects.bulk_update(
        events, ["attempts", "last_error", "next_attempt_at", "dead_lettered_at"]
    )


def outbox_relay_batch(*, publisher: Publisher, batch_size: int | None = None) -> RelayResult:
    """Relay one batch (see the module docstring). A broker outage is recorded on the
    batch's rows and reported in `errors`."""
    result = RelayResult()
    with transaction.atomic():
        now = timezone.now()
        rows = _claim(now, batch_size or settings.RELAY_BATCH_SIZE)
        if not rows:
            return result
        result.batches = 1
        with _publish_span(publisher, rows) as span:
            _publish(publisher, rows, now, result)
            if span is not None and result.errors:
                tracing.span_failed(span, result.errors[0])
    metrics.events_dead_lettered(result.dead_lettered)
    return result


def _publish_span(publisher: Publisher, rows: list[OutboxEvent]):
    """The batch's span (kind PRODUCER, a trace of its own or the relay task's). One batch
    carries events of many requests, so it is linked to each event's originating span, as
    the messaging conventions have it for batches, rather than parented to one of them."""
    if not tracing.enabled():
        return tracing.span("")
    return tracing.span(
        f"publish {publisher.exchange_name}",
        kind="producer",
        links=(
            tracing.link(
                row.traceparent, row.tracestate, {"messaging.message.id": str(row.event_id)}
            )
            for row in rows
        ),
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": publisher.exchange_name,
            "messaging.batch.message_count": len(rows),
        },
    )


def _publish(publisher: Publisher, rows: list[OutboxEvent], now, result: RelayResult) -> None:
    waves, result.held_back = _in_aggregate_order(rows)
    published = 0
    refused: list[OutboxEvent] = []
    for index, wave in enumerate(waves):
        try:
            outcome = publisher.publish_wave(wave)
        except BrokerUnavailable as exc:
            result.errors.append(str(exc))
            _record_failures([e for w in waves[index:] for e in w], str(exc), now, result)
            break
        confirmed = [event.pk for event in wave if outcome[event.pk] is None]
        if confirmed:
            metrics.events_confirmed(wave, outcome)
            _mark_published(confirmed, since=min(event.created_at for event in wave))
            published += len(confirmed)
        blocked = set()
        for event in wave:
            if outcome[event.pk] is not None:
                event.last_error = outcome[event.pk]
                refused.append(event)
                blocked.add((event.aggregate_type, event.aggregate_id))
        if blocked:
            # Later events of a refused aggregate stay behind it, unsent.
            for later in waves[index + 1 :]:
                later[:] = [e for e in later if (e.aggregate_type, e.aggregate_id) not in blocked]
    result.published = published
    if refused:
        _record_failures(refused, refused[0].last_error, now, result)


def outbox_relay(
    *,
    publisher: Publisher | None = None,
    max_seconds: float | None = None,
    batch_size: int | None = None,
    should_stop=lambda: False,
) -> RelayResult:
    """Relay batches until nothing deliverable is left, the time is up, `should_stop()`
    says so, or the broker is unavailable (recorded in `errors`, not raised)."""
    own_publisher = publisher is None
    publisher = publisher or Publisher()
    total = RelayResult()
    deadline = time.monotonic() + (max_seconds or settings.RELAY_MAX_RUN_SECONDS)
    try:
        while time.monotonic() < deadline and not should_stop():
            result = outbox_relay_batch(publisher=publisher, batch_size=batch_size)
            total.add(result)
            if result.errors or result.published == 0:
                break
    finally:
        if own_publisher:
            publisher.close()
    return total


_last_kick = 0.0


def outbox_kick() -> None:
    """On commit of a write: ask a worker to relay now instead of at the next beat. At most
    one kick per 50 ms per process; the beat covers anything a skipped kick leaves."""
    global _last_kick
    if not settings.RELAY_KICK_ON_COMMIT:
        return
    now = time.monotonic()
    if now - _last_kick < 0.05:
        return
    _last_kick = now
    try:
        # Looked up by name, as beat does: history.tasks imports this module. Outside the
        # writing request's trace: the relay's batch carries other requests' events too,
        # and links to each event's trace instead.
        with tracing.detached():
            current_app.tasks[RELAY_TASK].apply_async(
                expires=max(settings.RELAY_INTERVAL_SECONDS * 2, 1)
            )
    except Exception:
        logger.warning("could not kick the relay", exc_info=True)
