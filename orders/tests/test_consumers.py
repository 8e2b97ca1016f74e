"""The cancellation e-mail (orders/consumers.py) leaves only when its handling commits."""

import orjson
import pytest
from django.core import mail

from history.consumers import Outcome, event_handle_once, events_consume
from history.models import ConsumedEvent, OutboxEvent
from history.relay import cloudevent, outbox_relay
from orders.consumers import notify_order_cancelled
from orders.services import order_cancel, order_create
from tests.factories import CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CONSUMER_MAX_DELIVERIES = 3
    settings.CONSUMER_RETRY_DELAY_SECONDS = 0


@pytest.fixture
def cancelled(audit):
    customer = CustomerFactory(email="buyer@example.com")
    order = order_create(
        customer_id=customer.pk, reference="PO-7", lines={ProductFactory().sku: 3}, audit=audit
    )
    order_cancel(order_id=order.pk, audit=audit)
    return order


def _fails_after_notifying(*, times: int):
    """The real handler, then an error on the first `times` cancellations, as when something
    after the mail fails and the transaction rolls back."""
    failures = [times]

    def handler(event: dict) -> None:
        notify_order_cancelled(event)
        if event["type"] == "order.cancelled" and failures[0] > 0:
            failures[0] -= 1
            raise RuntimeError("the commit did not happen")

    return handler


def test_a_rolled_back_handling_sends_no_mail(cancelled):
    # given: the order.cancelled event as the relay sends it
    row = OutboxEvent.objects.get(event_type="order.cancelled")
    event = orjson.loads(cloudevent(row))

    # when: the handling fails after the handler asked for the mail
    with pytest.raises(RuntimeError):
        event_handle_once(consumer="mailer", event=event, handler=_fails_after_notifying(times=1))

    # then: nothing was sent, and nothing recorded
    assert mail.outbox == []
    assert not ConsumedEvent.objects.exists()

    # when: it is delivered again and commits
    assert event_handle_once(consumer="mailer", event=event, handler=notify_order_cancelled)

    # then: one mail
    assert [m.to for m in mail.outbox] == [["buyer@example.com"]]


def test_a_redelivered_cancellation_mails_once_through_the_broker(cancelled, consumer_queue):
    # given: the queue is bound, the events are relayed, and the first handling rolls back
    events_consume(
        queue_name=consumer_queue, binding="order.*", handler=lambda e: None, idle_timeout=0.1
    )
    outbox_relay()

    # when
    deliveries = []
    events_consume(
        queue_name=consumer_queue,
        binding="order.*",
        handler=_fails_after_notifying(times=1),
        on_event=deliveries.append,
        idle_timeout=0.5,
    )

    # then: created (handled), cancelled (failed, then handled), one mail
    cancellations = [d for d in deliveries if d.event["type"] == "order.cancelled"]
    assert [(d.outcome, d.attempt) for d in cancellations] == [
        (Outcome.RETRY, 1),
        (Outcome.HANDLED, 2),
    ]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == f"Order #{cancelled.pk} was cancelled"
