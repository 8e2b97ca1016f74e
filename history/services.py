"""Writes of the history app that are not recordings of a change (those go through
`history.recorder`): outbox housekeeping, idempotency records and the instance id."""

import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from history.models import IdempotencyRecord, Instance, OutboxEvent
from history.relay import outbox_kick


def idempotency_records_purge(*, older_than: timedelta) -> int:
    deleted, _ = IdempotencyRecord.objects.filter(
        created_at__lt=timezone.now() - older_than
    ).delete()
    return deleted


def outbox_events_retry(*, event_ids: list[int]) -> int:
    """Send dead-lettered events back to the relay, with a fresh attempt budget."""
    retried = OutboxEvent.objects.filter(
        pk__in=event_ids, dead_lettered_at__isnull=False, published_at__isnull=True
    ).update(dead_lettered_at=None, attempts=0, next_attempt_at=None)
    if retried:
        transaction.on_commit(outbox_kick)
    return retried


def outbox_published_purge(*, older_than: timedelta, batch_size: int = 10_000) -> int:
    """Delete outbox rows published more than `older_than` ago (the ledger keeps the
    history; the outbox is only a delivery queue). Deletes in batches to keep locks short."""
    cutoff = timezone.now() - older_than
    deleted = 0
    while True:
        ids = list(
            OutboxEvent.objects.filter(published_at__lt=cutoff).values_list("id", flat=True)[
                :batch_size
            ]
        )
        if not ids:
            return deleted
        deleted += OutboxEvent.objects.filter(id__in=ids).delete()[0]


def instance_id_rotate() -> tuple[uuid.UUID | None, uuid.UUID]:
    """Give this database a new instance id, so no process reads the cache entries written
    under the old one (after restoring a backup over a running system). Returns (old, new)."""
    with transaction.atomic():
        instance = Instance.objects.select_for_update().filter(pk=1).first()
        old = instance.instance_id if instance else None
        instance = instance or Instance(pk=1)
        instance.instance_id = uuid.uuid4()
        instance.save()
    return old, instance.instance_id
