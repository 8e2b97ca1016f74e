"""Consuming the event stream: a pattern integrators can copy.

Delivery is at least once, so a consumer records each event id it handled in the same
database transaction as the handling (`ConsumedEvent`, unique per consumer), and skips ids
it has seen. Messages are acknowledged only after that transaction commits.
"""

import logging
from collections.abc import Callable

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from kombu import Connection, Exchange, Queue

from history.models import ConsumedEvent

logger = logging.getLogger(__name__)

Handler = Callable[[dict], None]


def _print_only(event: dict) -> None:
    """The handler of the plain consumer: `consume_events` prints each event itself."""


# name -> handler, for `consume_events --handler`; apps add theirs in AppConfig.ready.
HANDLERS: dict[str, Handler] = {"print": _print_only}


def handler_register(name: str, handler: Handler) -> None:
    HANDLERS[name] = handler


def event_handle_once(*, consumer: str, event: dict, handler: Handler) -> bool:
    """Run `handler` for the event unless this consumer already did; True if it ran."""
    try:
        with transaction.atomic():
            ConsumedEvent.objects.create(consumer=consumer, event_id=event["id"])
            handler(event)
    except IntegrityError:
        return False
    return True


def events_consume(
    *,
    queue_name: str,
    binding: str,
    handler: Handler,
    on_event: Callable[[dict, bool], None] | None = None,
    max_messages: int | None = None,
    idle_timeout: float | None = None,
    url: str | None = None,
) -> int:
    """Bind a durable queue to the event exchange and handle messages until `max_messages`
    were read or nothing arrived for `idle_timeout` seconds (forever by default)."""
    url = url or settings.EVENT_BUS_URL
    options = settings.FILESYSTEM_TRANSPORT_OPTIONS if url.startswith("filesystem") else {}
    exchange = Exchange(settings.EVENT_EXCHANGE, type="topic", durable=True)
    queue = Queue(queue_name, exchange=exchange, routing_key=binding, durable=True)
    read = 0

    def on_message(message) -> None:
        nonlocal read
        event = orjson.loads(message.body)
        handled = event_handle_once(consumer=queue_name, event=event, handler=handler)
        message.ack()
        read += 1
        if on_event:
            on_event(event, handled)

    with Connection(url, transport_options=options) as connection:
        channel = connection.channel()
        exchange(channel).declare()
        queue(channel).declare()
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
