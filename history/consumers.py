"""Consuming the event stream: a pattern integrators can copy.

Delivery is at least once, so a consumer records each event id it handled in the same
database transaction as the handling (`ConsumedEvent`, unique per consumer), and skips ids
it has seen. Messages are acknowledged only after that transaction commits.

A handler that raises rolls its transaction back (the record of the id with it), and the
message goes back to the queue (reject with requeue) after a pause that doubles at each
attempt, to be tried again; the consumer logs the failure and carries on. The queue is a
quorum queue with `x-delivery-limit`: RabbitMQ counts the deliveries of every message and,
after CONSUMER_MAX_DELIVERIES of them, dead-letters it through the exchange
`<EVENT_EXCHANGE>.dead` to the queue `<queue>.dead`, where it stays for an operator. A
message that is not an event at all (not JSON, no UUID id) is dead-lettered at once.

Brokers without quorum queues (kombu's filesystem transport of `make run`) get the same
rules from the consumer itself: it republishes a failed message to its queue with the
attempt count in a header, and publishes it to the dead-letter exchange after the last one.
"""

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import amqp
import orjson
from django.conf import settings
from django.db import close_old_connections, transaction
from kombu import Connection, Exchange, Queue

from config import tracing
from config.logging import bound, event_fields
from history.models import ConsumedEvent
from history.services import consumed_event_claim

logger = logging.getLogger(__name__)

Handler = Callable[[dict], None]

DEAD_SUFFIX = ".dead"
# The attempt count of a message republished by the consumer itself (brokers without quorum
# queues); RabbitMQ's quorum queues count in `x-delivery-count`.
ATTEMPTS_HEADER = "x-ordertrack-attempts"
MAX_RETRY_DELAY_SECONDS = 60.0
CONSUMER_NAME_MAX_LENGTH = ConsumedEvent._meta.get_field("consumer").max_length


def _print_only(event: dict) -> None:
    """The handler of the plain consumer: `consume_events` prints each event itself."""


# name -> handler, for `consume_events --handler`; apps add theirs in AppConfig.ready.
HANDLERS: dict[str, Handler] = {"print": _print_only}


def handler_register(name: str, handler: Handler) -> None:
    HANDLERS[name] = handler


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"  # this consumer handled the id before: skipped, acknowledged
    RETRY = "retry"  # the handler failed; the message will be delivered again
    DEAD_LETTERED = "dead_lettered"  # failed for the last time, or not an event


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one message."""

    outcome: Outcome
    event: dict | None
    attempt: int
    max_deliveries: int
    error: str = ""


class QueueMismatch(Exception):
    """The queue exists with other arguments (a classic queue from before the consumers used
    quorum queues, or another delivery limit): RabbitMQ refuses to declare it differently."""


def event_handle_once(*, consumer: str, event: dict, handler: Handler) -> bool:
    """Run `handler` for the event unless this consumer already did; True if it ran. The
    record of the id and the handler's effects commit together. Only a record that already
    exists means "already handled": an error of the handler (an IntegrityError included)
    propagates, and nothing of the handling is kept."""
    event_id = uuid.UUID(str(event["id"]))
    with transaction.atomic():
        if not consumed_event_claim(consumer=consumer, event_id=event_id):
            return False
        handler(event)
    return True


def dead_letter_exchange() -> Exchange:
    """One direct exchange per event exchange; each consumer's dead queue is bound to it
    with the consumer's queue name as routing key."""
    return Exchange(settings.EVENT_EXCHANGE + DEAD_SUFFIX, type="direct", durable=True)


def consumer_queues(
    *, queue_name: str, binding: str, max_deliveries: int, quorum: bool
) -> tuple[Queue, Queue]:
    """The consumer's queue, bound to the event exchange, and its dead-letter queue
    `<queue>.dead`. On RabbitMQ (`quorum`) both are quorum queues, and the first one has
    RabbitMQ dead-letter a message after `max_deliveries` deliveries."""
    events = Exchange(settings.EVENT_EXCHANGE, type="topic", durable=True)
    dead = dead_letter_exchange()
    arguments = dead_arguments = None
    if quorum:
        arguments = {
            "x-queue-type": "quorum",
            # The limit counts returns: a message is delivered once more than the limit.
            "x-delivery-limit": max_deliveries - 1,
            "x-dead-letter-exchange": dead.name,
            "x-dead-letter-routing-key": queue_name,
            # Kept in this queue until the dead-letter queue has confirmed it (this strategy
            # needs reject-publish overflow; the queue has no length limit anyway).
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        dead_arguments = {"x-queue-type": "quorum"}
    queue = Queue(
        queue_name, exchange=events, routing_key=binding, durable=True, queue_arguments=arguments
    )
    dead_queue = Queue(
        queue_name + DEAD_SUFFIX,
        exchange=dead,
        routing_key=queue_name,
        durable=True,
        queue_arguments=dead_arguments,
    )
    return queue, dead_queue


def _retry_delay(attempt: int) -> float:
    return min(settings.CONSUMER_RETRY_DELAY_SECONDS * 2 ** (attempt - 1), MAX_RETRY_DELAY_SECONDS)


def _trace_carrier(message) -> dict:
    """The trace context a message carries: its AMQP headers `traceparent`/`tracestate`, or
    else its CloudEvents attributes of the same names (empty: none)."""
    headers = message.headers or {}
    if headers.get("traceparent"):
        return {key: headers.get(key) for key in ("traceparent", "tracestate")}
    try:
        event = orjson.loads(message.body)
        return {key: event.get(key) for key in ("traceparent", "tracestate")}
    except (orjson.JSONDecodeError, AttributeError):
        return {}


def _parse(body: bytes) -> dict:
    """The event in a message body; ValueError if it is not one."""
    try:
        event = orjson.loads(body)
        uuid.UUID(str(event["id"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an event: {exc!r}") from exc
    return event


def _log_fields(event: dict) -> dict:
    """A log line's fields for one received event (config.logging): its id and type, its
    aggregate (the envelope's subject, of the kind its source names) and the request that
    recorded it."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    kind = str(event.get("source", "")).rsplit("/", 1)[-1].removesuffix("s")
    return event_fields(
        event_id=event["id"],
        event_type=str(event.get("type") or ""),
        aggregate_type=kind if event.get("subject") else "",
        aggregate_id=str(event.get("subject") or ""),
        correlation_id=str(data.get("correlation_id") or ""),
    )


def events_consume(
    *,
    queue_name: str,
    binding: str,
    handler: Handler,
    on_event: Callable[[Delivery], None] | None = None,
    max_messages: int | None = None,
    idle_timeout: float | None = None,
    url: str | None = None,
    max_deliveries: int | None = None,
) -> int:
    """Bind a durable queue to the event exchange and handle messages until `max_messages`
    were read or nothing arrived for `idle_timeout` seconds (forever by default). A failing
    message is tried `max_deliveries` times (CONSUMER_MAX_DELIVERIES), then dead-lettered
    to `<queue>.dead`; the consumer keeps running. Returns how many messages it read."""
    url = url or settings.EVENT_BUS_URL
    max_deliveries = max_deliveries or settings.CONSUMER_MAX_DELIVERIES
    if max_deliveries < 1:
        raise ValueError("max_deliveries must be at least 1.")
    if len(queue_name) > CONSUMER_NAME_MAX_LENGTH:
        # The queue name is the consumer's name in ConsumedEvent: refuse it here rather than
        # fail (and dead-letter) every message.
        raise ValueError(f"A queue name has at most {CONSUMER_NAME_MAX_LENGTH} characters.")
    options = settings.FILESYSTEM_TRANSPORT_OPTIONS if url.startswith("filesystem") else {}
    read = 0

    with Connection(url, transport_options=options) as connection:
        quorum = connection.transport.driver_type == "amqp"
        queue, dead_queue = consumer_queues(
            queue_name=queue_name, binding=binding, max_deliveries=max_deliveries, quorum=quorum
        )
        producer = connection.Producer()

        def republish(message, *, exchange, routing_key: str, attempt: int) -> None:
            """Brokers without quorum queues: the consumer counts and dead-letters itself."""
            producer.publish(
                message.body,
                exchange=exchange,
                routing_key=routing_key,
                headers={**(message.headers or {}), ATTEMPTS_HEADER: attempt},
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                message_id=message.properties.get("message_id"),
                delivery_mode=2,
            )
            message.ack()

        def dead_letter(message, attempt: int) -> None:
            if quorum:
                message.reject(requeue=False)  # RabbitMQ routes it to the dead-letter exchange
            else:
                republish(
                    message, exchange=dead_queue.exchange, routing_key=queue_name, attempt=attempt
                )

        def deliver(message) -> Delivery:
            if not tracing.enabled():
                return handle(message)
            # The event's trace goes on: the span's parent is the one that recorded it.
            with tracing.span(
                f"process {queue_name}",
                kind="consumer",
                parent=_trace_carrier(message),
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.destination.subscription.name": queue_name,
                    "messaging.message.id": message.properties.get("message_id") or "",
                    "messaging.rabbitmq.destination.routing_key": (
                        message.delivery_info.get("routing_key") or ""
                    ),
                },
            ) as span:
                delivery = handle(message)
                span.set_attribute("ordertrack.consumer.outcome", str(delivery.outcome))
                if delivery.event is not None:
                    span.set_attribute("cloudevents.event_id", str(delivery.event["id"]))
                    span.set_attribute("cloudevents.event_type", str(delivery.event.get("type")))
                if delivery.outcome in (Outcome.RETRY, Outcome.DEAD_LETTERED):
                    tracing.span_failed(span, delivery.error)
                return delivery

        def handle(message) -> Delivery:
            close_old_connections()  # a connection broken since the last message is replaced
            headers = message.headers or {}
            count_header = "x-delivery-count" if quorum else ATTEMPTS_HEADER
            attempt = int(headers.get(count_header) or 0) + 1
            try:
                event = _parse(message.body)
            except ValueError as exc:
                logger.error("consumer %s: dead-lettered a message: %s", queue_name, exc)
                dead_letter(message, attempt)
                return Delivery(Outcome.DEAD_LETTERED, None, attempt, max_deliveries, str(exc))
            # Every line written while handling it (the handler's too) names the event.
            with bound(consumer=queue_name, **_log_fields(event)):
                try:
                    handled = event_handle_once(consumer=queue_name, event=event, handler=handler)
                except Exception as exc:  # a failing handler must not stop the consumer
                    last = attempt >= max_deliveries
                    logger.exception(
                        "consumer %s: %s %s failed (delivery %d of %d)%s",
                        queue_name,
                        event.get("type"),
                        event["id"],
                        attempt,
                        max_deliveries,
                        f"; dead-lettered to {dead_queue.name}" if last else "; will retry",
                    )
                    if not last:
                        time.sleep(_retry_delay(attempt))
                    if quorum:
                        # RabbitMQ counts the delivery and, past the limit, dead-letters it.
                        message.reject(requeue=True)
                    elif last:
                        dead_letter(message, attempt)
                    else:
                        republish(message, exchange="", routing_key=queue_name, attempt=attempt)
                    outcome = Outcome.DEAD_LETTERED if last else Outcome.RETRY
                    return Delivery(outcome, event, attempt, max_deliveries, repr(exc))
                message.ack()
                return Delivery(
                    Outcome.HANDLED if handled else Outcome.DUPLICATE,
                    event,
                    attempt,
                    max_deliveries,
                )

        def on_message(message) -> None:
            nonlocal read
            delivery = deliver(message)
            read += 1
            if on_event:
                on_event(delivery)

        channel = connection.channel()
        try:
            dead_queue(channel).declare()
            queue(channel).declare()
        except amqp.exceptions.PreconditionFailed as exc:
            raise QueueMismatch(
                f"RabbitMQ refused to declare the queue {queue_name} (or {dead_queue.name}): "
                f"it exists with other arguments, as a classic queue from before the "
                f"consumers used quorum queues, or with another CONSUMER_MAX_DELIVERIES. Let "
                f"the old consumer drain it, delete it once (rabbitmqctl delete_queue "
                f"{queue_name}), and start again. ({exc})"
            ) from exc
        with connection.Consumer(
            queue,
            on_message=on_message,
            accept=["application/cloudevents+json"],
            prefetch_count=100,
        ):
            while max_messages is None or read < max_messages:
                try:
                    connection.drain_events(timeout=idle_timeout or 1.0)
                except TimeoutError:
                    if idle_timeout is not None:
                        break
    return read
