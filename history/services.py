import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from history.audit import Audit
from history.events import LineChange, order_event_data
from history.models import IdempotencyRecord, OrderEventType, OrderLedgerEntry, OutboxEvent
from history.relay import outbox_kick


def order_changes_record(
    *,
    order,
    event_type: OrderEventType,
    changes: Sequence[LineChange],
    audit: Audit,
    occurred_at: datetime,
) -> OutboxEvent:
    """Append one ledger row per changed line and one outbox event for the whole command.

    Must run inside the caller's transaction, after the order row has been locked and its
    version bumped, so that state, ledger and outbox commit together or not at all.
    """
    event_id = uuid.uuid4()
    OrderLedgerEntry.objects.bulk_create(
        [
            OrderLedgerEntry(
                event_id=event_id,
                order_id=order.pk,
                product_id=change.product_id,
                sku=change.sku,
                version=order.version,
                event_type=event_type,
                delta=change.delta,
                quantity_before=change.before,
                quantity_after=change.after,
                actor=audit.actor,
                source=audit.source,
                reason=audit.reason,
                occurred_at=occurred_at,
                correlation_id=audit.correlation_id,
                idempotency_key=audit.idempotency_key,
            )
            for change in changes
        ]
    )
    transaction.on_commit(outbox_kick)
    return OutboxEvent.objects.create(
        event_id=event_id,
        aggregate_type="order",
        aggregate_id=str(order.pk),
        aggregate_version=order.version,
        event_type=event_type,
        payload=order_event_data(
            order_id=order.pk,
            version=order.version,
            status=order.status,
            reference=order.reference,
            customer_id=order.customer_id,
            changes=changes,
            audit=audit,
            occurred_at=occurred_at,
        ),
        created_at=occurred_at,
    )


def idempotency_records_purge(*, older_than: timedelta) -> int:
    deleted, _ = IdempotencyRecord.objects.filter(
        created_at__lt=timezone.now() - older_than
    ).delete()
    return deleted


def outbox_events_retry(*, event_ids: list[int]) -> int:
    """Send dead-lettered events back to the relay, with a fresh attempt budget."""
    return OutboxEvent.objects.filter(
        pk__in=event_ids, dead_lettered_at__isnull=False, published_at__isnull=True
    ).update(dead_lettered_at=None, attempts=0, next_attempt_at=None)
