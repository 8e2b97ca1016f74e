"""Periodic housekeeping for the history app. The beat schedule in config/celery_app.py
names these tasks by their dotted path, so keep the names stable."""

from datetime import timedelta

from celery import shared_task
from celery.utils.log import get_task_logger
from django.conf import settings

from history.projector import projections_run
from history.relay import RELAY_TASK, outbox_relay
from history.seals import ledger_seal
from history.services import (
    consumed_events_purge,
    idempotency_records_purge,
    outbox_published_purge,
    partitions_ensure,
)

logger = get_task_logger(__name__)


@shared_task
def purge_idempotency_keys() -> int:
    ttl_hours = settings.IDEMPOTENCY_KEY_TTL_HOURS
    deleted = idempotency_records_purge(older_than=timedelta(hours=ttl_hours))
    logger.info("Purged %d idempotency records older than %d hours.", deleted, ttl_hours)
    return deleted


@shared_task(name=RELAY_TASK, ignore_result=True)
def relay_outbox() -> dict:
    """Beat runs this every RELAY_INTERVAL_SECONDS and each commit kicks it; it drains the
    outbox, and several copies can run at once (rows are claimed with SKIP LOCKED)."""
    result = outbox_relay()
    if result.errors:
        logger.warning("relay: broker unavailable: %s", result.errors[0])
    return {"published": result.published, "failed": result.failed}


@shared_task(ignore_result=True)
def project_ledger() -> dict:
    return projections_run()


@shared_task(ignore_result=True)
def purge_published_outbox() -> int:
    dropped = outbox_published_purge(older_than=timedelta(days=settings.OUTBOX_RETENTION_DAYS))
    logger.info("Dropped %d monthly partitions of published outbox events.", dropped)
    return dropped


@shared_task(ignore_result=True)
def create_partitions() -> int:
    """Beat runs this hourly: the ledgers' and the outbox's partitions for this month and
    the next PARTITION_MONTHS_AHEAD, those missing. Idempotent."""
    created = partitions_ensure(months_ahead=settings.PARTITION_MONTHS_AHEAD)
    if created:
        logger.info("Created %d monthly partitions.", created)
    return created


@shared_task(ignore_result=True)
def purge_consumed_events() -> int:
    days = settings.CONSUMED_EVENT_RETENTION_DAYS
    deleted = consumed_events_purge(older_than=timedelta(days=days))
    logger.info("Purged %d consumed-event records older than %d days.", deleted, days)
    return deleted


@shared_task(ignore_result=True)
def seal_ledger() -> int:
    """Beat runs this every LEDGER_SEAL_INTERVAL_SECONDS: seal the rows committed since the
    last seal (none: no seal). Returns the rows sealed."""
    seal = ledger_seal()
    if seal is not None:
        logger.info("Sealed %d ledger rows: seal %d.", seal.batch_size, seal.number)
    return seal.batch_size if seal else 0
