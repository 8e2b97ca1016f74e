"""Test helpers that talk to the real RabbitMQ: a queue bound to the run's own exchange."""

import contextlib
import time
import uuid

import orjson
from django.conf import settings
from kombu import Connection, Exchange, Queue


class EventCollector:
    """An exclusive queue bound to the test run's exchange, read with basic.get."""

    def __init__(
        self, *, binding: str = "#", arguments: dict | None = None, url: str | None = None
    ):
        self.connection = Connection(url or settings.EVENT_BUS_URL)
        self.channel = self.connection.channel()
        exchange = Exchange(settings.EVENT_EXCHANGE, type="topic", durable=True)
        exchange(self.channel).declare()
        self.queue = Queue(
            f"{settings.EVENT_EXCHANGE}.test.{uuid.uuid4().hex[:8]}",
            exchange=exchange,
            routing_key=binding,
            exclusive=True,
            auto_delete=True,
            queue_arguments=arguments,
        )(self.channel)
        self.queue.declare()
        self.events: list[dict] = []

    def collect(self, *, expected: int | None = None, timeout: float = 5.0) -> list[dict]:
        """Read until `expected` events arrived (or, without it, until the queue stays empty
        for a moment); returns everything read so far."""
        deadline = time.monotonic() + timeout
        idle_since = None
        while time.monotonic() < deadline:
            message = self.queue.get(no_ack=True, accept=["application/cloudevents+json"])
            if message is None:
                if expected is not None and len(self.events) >= expected:
                    break
                idle_since = idle_since or time.monotonic()
                if expected is None and time.monotonic() - idle_since > 0.3:
                    break
                time.sleep(0.01)
                continue
            idle_since = None
            event = orjson.loads(message.body)
            event["_routing_key"] = message.delivery_info["routing_key"]
            event["_properties"] = message.properties
            self.events.append(event)
        return self.events

    def close(self) -> None:
        # The exclusive queue goes away with the connection anyway.
        with contextlib.suppress(Exception):
            self.queue.delete()
        self.connection.release()


def consumer_queue_name() -> str:
    """A unique name for a consumer's queue on the run's own exchange."""
    return f"{settings.EVENT_EXCHANGE}.consumer.{uuid.uuid4().hex[:8]}"


def consumer_queues_delete(name: str) -> None:
    """Delete a consumer's queue and its dead-letter queue `<name>.dead`."""
    with Connection(settings.EVENT_BUS_URL) as connection:
        for queue in (name, f"{name}.dead"):
            connection.default_channel.queue_delete(queue)


def queue_drain(name: str, *, url: str | None = None, transport_options=None) -> list:
    """Every message waiting in the queue `name` (acknowledged, so they are gone)."""
    messages = []
    with Connection(url or settings.EVENT_BUS_URL, transport_options=transport_options) as conn:
        queue = Queue(name, channel=conn.default_channel, no_declare=True)
        while (message := queue.get(no_ack=True)) is not None:
            messages.append(message)
    return messages
