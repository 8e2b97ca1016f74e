from datetime import timedelta

import pytest
from django.utils import timezone

from history.models import OrderLedgerEntry, OutboxEvent
from history.services import idempotency_records_purge, outbox_published_purge
from history.tasks import purge_published_outbox

pytestmark = pytest.mark.django_db


def test_old_published_outbox_rows_are_purged_and_nothing_else(make_order, product):
    # given: three events: published long ago, published just now, never published
    for _ in range(3):
        make_order(lines={product.sku: 1})
    old, recent, pending = OutboxEvent.objects.order_by("id")
    now = timezone.now()
    OutboxEvent.objects.filter(pk=old.pk).update(published_at=now - timedelta(days=8))
    OutboxEvent.objects.filter(pk=recent.pk).update(published_at=now - timedelta(days=1))

    # when
    deleted = purge_published_outbox.apply().get()

    # then
    assert deleted == 1
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}
    assert OrderLedgerEntry.objects.count() == 3
    assert outbox_published_purge(older_than=timedelta(days=7)) == 0


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
