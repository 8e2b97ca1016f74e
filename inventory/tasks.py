"""Inventory background jobs; config/celery_app.py schedules them."""

from celery import shared_task
from celery.utils.log import get_task_logger

from inventory.services import reservations_expire

logger = get_task_logger(__name__)


@shared_task(ignore_result=True)
def expire_reservations() -> int:
    expired = reservations_expire()
    if expired:
        logger.info("Expired %d reservation(s) and released their stock.", expired)
    return expired
