import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from config import metrics
from history.audit import Audit
from history.events import stock_event_data
from history.models import (
    IdempotencyRecord,
    OutboxEvent,
    StockEventType,
    StockLedgerEntry,
    StockMovementType,
)
from history.relay import outbox_kick


@dataclass
class StockMove:
    """The net change a command made to one stock level (already applied to `level`)."""

    level: object
    movement: StockMovementType
    on_hand: int = 0
    reserved: int = 0
    in_transit: int = 0
    backorder: int = 0

    def as_event(self) -> dict:
        level = self.level
        return {
            "location": level.location.code,
            "movement": str(self.movement),
            "delta_on_hand": self.on_hand,
            "delta_reserved": self.reserved,
            "delta_in_transit": self.in_transit,
            "delta_backorder": self.backorder,
            "on_hand": level.on_hand,
            "reserved": level.reserved,
            "available": level.on_hand - level.reserved,
            "in_transit": level.in_transit,
            "backorder": level.backorder,
        }


def stock_moves_record(
    *,
    moves: Sequence[StockMove],
    event_type: StockEventType,
    aggregate_type: str,
    aggregate_id: str,
    aggregate_version: int,
    reference_type: str,
    reference_id: str,
    audit: Audit,
    occurred_at: datetime,
    extra: dict | None = None,
) -> OutboxEvent:
    """Append one stock ledger row per move and one outbox event for the command. Runs in
    the caller's transaction, after the stock levels were locked and updated."""
    event_id = uuid.uuid4()
    StockLedgerEntry.objects.bulk_create(
        [
            StockLedgerEntry(
                event_id=event_id,
                product_id=move.level.product_id,
                sku=move.level.product.sku,
                location_id=move.level.location_id,
                location_code=move.level.location.code,
                movement=move.movement,
                delta_on_hand=move.on_hand,
                delta_reserved=move.reserved,
                delta_in_transit=move.in_transit,
                delta_backorder=move.backorder,
                on_hand_after=move.level.on_hand,
                reserved_after=move.level.reserved,
                in_transit_after=move.level.in_transit,
                backorder_after=move.level.backorder,
                version=move.level.version,
                reference_type=reference_type,
                reference_id=reference_id,
                actor=audit.actor,
                source=audit.source,
                reason=audit.reason,
                occurred_at=occurred_at,
                correlation_id=audit.correlation_id,
                idempotency_key=audit.idempotency_key,
            )
            for move in moves
        ]
    )
    transaction.on_commit(partial(metrics.adjustments_recorded, audit.source, "stock", len(moves)))
    return outbox_event_add(
        event_id=event_id,
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        payload=stock_event_data(
            sku=moves[0].level.product.sku,
            aggregate_version=aggregate_version,
            moves=[move.as_event() for move in moves],
            reference_type=reference_type,
            reference_id=reference_id,
            audit=audit,
            occurred_at=occurred_at,
            extra=extra,
        ),
        occurred_at=occurred_at,
    )


def outbox_event_add(
    *,
    event_type: str,
    aggregate_type: str,
    aggregate_id: str,
    aggregate_version: int,
    payload: dict,
    occurred_at: datetime,
    event_id: uuid.UUID | None = None,
) -> OutboxEvent:
    """Queue an event for the relay; it goes out when the caller's transaction commits."""
    transaction.on_commit(outbox_kick)
    return OutboxEvent.objects.create(
        event_id=event_id or uuid.uuid4(),
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        event_type=event_type,
        payload=payload,
        created_at=occurred_at,
    )


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
