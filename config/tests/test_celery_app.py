"""The beat schedule (config/celery_app.py) runs every periodic job the README promises."""

import importlib

from django.conf import settings

from config.celery_app import app


def test_the_beat_schedule_holds_every_promised_periodic_task():
    # given: what the README promises (Events; API conventions; Configuration; Stock)
    promised = {
        "history.tasks.relay_outbox": settings.RELAY_INTERVAL_SECONDS,
        "history.tasks.project_ledger": settings.PROJECTOR_INTERVAL_SECONDS,
        "inventory.tasks.expire_reservations": settings.RESERVATION_EXPIRY_INTERVAL_SECONDS,
        "history.tasks.seal_ledger": settings.LEDGER_SEAL_INTERVAL_SECONDS,
        "history.tasks.purge_idempotency_keys": 3600,
        "history.tasks.purge_published_outbox": 3600,
        "history.tasks.purge_consumed_events": 3600,
        "history.tasks.create_partitions": 3600,
    }

    # when
    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}

    # then: each task is scheduled at its interval, and is a task a worker knows by that name
    assert schedule == promised
    for name in promised:
        module, function = name.rsplit(".", 1)
        assert getattr(importlib.import_module(module), function).name == name
        assert name in app.tasks
