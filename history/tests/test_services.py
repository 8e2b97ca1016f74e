import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from history.models import ConsumedEvent
from history.services import (
    consumed_event_claim,
    consumed_events_purge,
    idempotency_records_purge,
)
from history.tasks import purge_consumed_events

pytestmark = pytest.mark.django_db


def test_idempotency_records_are_purged_after_their_ttl(api, product):
    # given
    from history.models import IdempotencyRecord

    api.post(
        "/api/v1/orders/",
        {"lines": [{"sku": product.sku, "quantity": 1}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="old-key",
    )
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))

    # when / then
    assert idempotency_records_purge(older_than=timedelta(hours=24)) == 1
    assert not IdempotencyRecord.objects.exists()


def test_consumed_event_records_are_purged_after_their_retention(settings):
    # given: records consumed 31 days, 29 days and a moment ago
    settings.CONSUMED_EVENT_RETENTION_DAYS = 30
    for _ in range(3):
        assert consumed_event_claim(consumer="mailer", event_id=uuid.uuid4())
    old, kept, fresh = ConsumedEvent.objects.order_by("id")
    now = timezone.now()
    ConsumedEvent.objects.filter(pk=old.pk).update(consumed_at=now - timedelta(days=31))
    ConsumedEvent.objects.filter(pk=kept.pk).update(consumed_at=now - timedelta(days=29))

    # when
    deleted = purge_consumed_events.apply().get()

    # then
    assert deleted == 1
    assert set(ConsumedEvent.objects.values_list("pk", flat=True)) == {kept.pk, fresh.pk}
    assert consumed_events_purge(older_than=timedelta(days=30)) == 0


def test_consumed_events_purge_works_in_batches():
    # given
    for _ in range(5):
        consumed_event_claim(consumer="mailer", event_id=uuid.uuid4())
    ConsumedEvent.objects.update(consumed_at=timezone.now() - timedelta(days=2))

    # when / then
    assert consumed_events_purge(older_than=timedelta(days=1), batch_size=2) == 5
    assert not ConsumedEvent.objects.exists()


def test_a_consumed_event_is_claimed_once_per_consumer():
    # given
    event_id = uuid.uuid4()

    # when / then
    assert consumed_event_claim(consumer="a", event_id=event_id) is True
    assert consumed_event_claim(consumer="a", event_id=event_id) is False
    assert consumed_event_claim(consumer="b", event_id=event_id) is True
