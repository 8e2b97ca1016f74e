"""The consumer pattern (history/consumers.py) on the real RabbitMQ: deduplication by id,
bounded retries of a failing event, and dead-lettering through a quorum queue."""

import io
import logging
import uuid

import orjson
import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from kombu import Connection, Exchange, Queue

from history.consumers import Outcome, event_handle_once, events_consume
from history.models import ConsumedEvent
from history.relay import outbox_relay
from inventory.models import Product
from orders.services import order_create
from tests.broker import queue_drain
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _quick_retries(settings):
    settings.CONSUMER_MAX_DELIVERIES = 3
    settings.CONSUMER_RETRY_DELAY_SECONDS = 0


def _bind(queue: str, binding: str = "order.*") -> None:
    """Declare the consumer's queues (as the first run of a consumer does)."""
    events_consume(queue_name=queue, binding=binding, handler=lambda event: None, idle_timeout=0.1)


def _relayed_orders(audit, n: int) -> list[int]:
    product = ProductFactory()
    orders = [
        order_create(customer_id=None, reference="", lines={product.sku: 1}, audit=audit).pk
        for _ in range(n)
    ]
    outbox_relay()
    return orders


def _consume(queue: str, handler, *, idle_timeout: float = 0.5, **kwargs) -> list:
    deliveries = []
    events_consume(
        queue_name=queue,
        binding="order.*",
        handler=handler,
        on_event=deliveries.append,
        idle_timeout=idle_timeout,
        **kwargs,
    )
    return deliveries


def test_a_handler_integrity_error_is_not_taken_for_a_duplicate():
    # given: a handler that breaks a unique constraint of its own
    existing = ProductFactory()
    event = {"id": str(uuid.uuid4()), "type": "order.created"}

    def handler(event: dict) -> None:
        Product.objects.create(sku=existing.sku, name="again")

    # when / then: the error reaches the caller, and nothing records the event as handled
    with pytest.raises(IntegrityError):
        event_handle_once(consumer="c", event=event, handler=handler)
    assert not ConsumedEvent.objects.exists()

    # when: it is delivered again and the handler works now
    ran = event_handle_once(consumer="c", event=event, handler=lambda event: None)

    # then: it runs, once; a further delivery is the only thing that counts as a duplicate
    assert ran is True
    assert event_handle_once(consumer="c", event=event, handler=handler) is False
    assert ConsumedEvent.objects.filter(consumer="c").count() == 1


def test_a_failing_event_is_retried_then_dead_lettered_and_the_consumer_carries_on(
    audit, consumer_queue, caplog
):
    # given: two events; the handler always fails on the first order's
    _bind(consumer_queue)
    poisoned, healthy = _relayed_orders(audit, 2)

    def handler(event: dict) -> None:
        if event["data"]["order_id"] == poisoned:
            raise RuntimeError("the handler failed")

    # when
    with caplog.at_level(logging.ERROR, logger="history.consumers"):
        deliveries = _consume(consumer_queue, handler)

    # then: the poisoned event was delivered CONSUMER_MAX_DELIVERIES times, the other once
    by_order = [(d.event["data"]["order_id"], d.outcome, d.attempt) for d in deliveries]
    assert [(o, a) for o, outcome, a in by_order if o == poisoned] == [
        (poisoned, 1),
        (poisoned, 2),
        (poisoned, 3),
    ]
    assert [outcome for o, outcome, _ in by_order if o == poisoned] == [
        Outcome.RETRY,
        Outcome.RETRY,
        Outcome.DEAD_LETTERED,
    ]
    assert (healthy, Outcome.HANDLED, 1) in by_order
    assert ConsumedEvent.objects.filter(consumer=consumer_queue).count() == 1
    # RabbitMQ dead-lettered it (quorum queue delivery limit) to <queue>.dead, nothing is lost
    (dead,) = queue_drain(f"{consumer_queue}.dead")
    assert orjson.loads(dead.body)["data"]["order_id"] == poisoned
    assert dead.headers["x-first-death-reason"] == "delivery_limit"
    assert dead.headers["x-death"][0]["routing-keys"] == ["order.created"]
    assert queue_drain(consumer_queue) == []
    failures = [r for r in caplog.records if "failed (delivery" in r.getMessage()]
    assert len(failures) == 3 and failures[0].exc_info


def test_a_passing_failure_is_retried_and_handled_once(audit, consumer_queue):
    # given: a handler that fails on its first call only
    _bind(consumer_queue)
    _relayed_orders(audit, 1)
    calls = []

    def handler(event: dict) -> None:
        calls.append(event["id"])
        if len(calls) == 1:
            raise ConnectionError("the mail server hung up")

    # when
    deliveries = _consume(consumer_queue, handler)

    # then
    assert [(d.outcome, d.attempt) for d in deliveries] == [
        (Outcome.RETRY, 1),
        (Outcome.HANDLED, 2),
    ]
    assert ConsumedEvent.objects.filter(consumer=consumer_queue).count() == 1
    assert queue_drain(f"{consumer_queue}.dead") == []


def test_a_message_that_is_not_an_event_is_dead_lettered_at_once(settings, consumer_queue):
    # given
    _bind(consumer_queue)
    with Connection(settings.EVENT_BUS_URL) as connection:
        connection.Producer().publish(
            b"not json",
            exchange=Exchange(settings.EVENT_EXCHANGE, type="topic", durable=True),
            routing_key="order.created",
            content_type="application/cloudevents+json",
            content_encoding="utf-8",
        )

    # when
    deliveries = _consume(consumer_queue, lambda event: None)

    # then
    assert [(d.outcome, d.event) for d in deliveries] == [(Outcome.DEAD_LETTERED, None)]
    (dead,) = queue_drain(f"{consumer_queue}.dead")
    assert dead.body == "not json"  # py-amqp decodes a utf-8 body
    assert dead.headers["x-first-death-reason"] == "rejected"


def test_consume_events_reports_failures_and_keeps_running(audit, consumer_queue, monkeypatch):
    # given: a registered handler that fails for every event
    from history import consumers

    def failing(event: dict) -> None:
        raise ValueError("no such customer")

    monkeypatch.setitem(consumers.HANDLERS, "failing", failing)
    call_command("consume_events", "--queue", consumer_queue, "--idle-timeout", "0.2")
    _relayed_orders(audit, 2)
    out, err = io.StringIO(), io.StringIO()

    # when
    call_command(
        "consume_events",
        "--queue",
        consumer_queue,
        "--handler",
        "failing",
        "--idle-timeout",
        "0.5",
        stdout=out,
        stderr=err,
    )

    # then: 2 events x 3 deliveries, all reported, and both dead-lettered
    assert "read 6 message(s)" in out.getvalue()
    assert err.getvalue().count("FAILED (delivery 3 of 3, dead-lettered)") == 2
    assert err.getvalue().count("will retry") == 4
    assert len(queue_drain(f"{consumer_queue}.dead")) == 2


def test_consume_events_explains_an_old_classic_queue_of_the_same_name(settings, consumer_queue):
    # given: the queue exists as a classic queue, as consumers of earlier versions made it
    with Connection(settings.EVENT_BUS_URL) as connection:
        Queue(consumer_queue, durable=True)(connection.default_channel).declare()

    # when / then
    with pytest.raises(CommandError, match=f"rabbitmqctl delete_queue {consumer_queue}"):
        call_command("consume_events", "--queue", consumer_queue, "--idle-timeout", "0.2")


def test_consume_events_refuses_a_queue_name_too_long_to_record():
    # when / then: the name is the consumer's name in ConsumedEvent (64 characters)
    with pytest.raises(CommandError, match="at most 64 characters"):
        call_command("consume_events", "--queue", "q" * 65, "--idle-timeout", "0.1")


def test_without_quorum_queues_the_consumer_counts_and_dead_letters_itself(
    settings, tmp_path, audit
):
    # given: kombu's filesystem transport (the embedded default of `make run`), which has
    # neither delivery limits nor dead-letter exchanges
    (tmp_path / "queue").mkdir()
    options = {
        "data_folder_in": str(tmp_path / "queue"),
        "data_folder_out": str(tmp_path / "queue"),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
    }
    settings.FILESYSTEM_TRANSPORT_OPTIONS = options
    url = "filesystem://localhost//"
    queue = "fs-consumer"
    events_consume(
        queue_name=queue, binding="order.*", handler=lambda e: None, idle_timeout=0.1, url=url
    )
    event = {"id": str(uuid.uuid4()), "type": "order.created", "data": {}}
    with Connection(url, transport_options=options) as connection:
        connection.Producer().publish(
            orjson.dumps(event),
            exchange=Exchange(settings.EVENT_EXCHANGE, type="topic", durable=True),
            routing_key="order.created",
            content_type="application/cloudevents+json",
            content_encoding="utf-8",
        )

    def handler(event: dict) -> None:
        raise RuntimeError("always")

    # when
    deliveries = _consume(queue, handler, idle_timeout=0.3, url=url)

    # then
    assert [(d.outcome, d.attempt) for d in deliveries] == [
        (Outcome.RETRY, 1),
        (Outcome.RETRY, 2),
        (Outcome.DEAD_LETTERED, 3),
    ]
    (dead,) = queue_drain(f"{queue}.dead", url=url, transport_options=options)
    assert orjson.loads(dead.body)["id"] == event["id"]
    assert queue_drain(queue, url=url, transport_options=options) == []
    assert not ConsumedEvent.objects.exists()
