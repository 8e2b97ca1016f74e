import os

from celery import Celery
from celery.signals import setup_logging, worker_init, worker_process_init
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("ordertrack")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# django-structlog in the worker: each task's log lines carry its task_id and the context of
# whoever queued it (the request_id, user_id of a request; config/logging.py).
app.steps["worker"].add(DjangoStructLogInitStep)


@setup_logging.connect(weak=False)
def logging_from_settings(loglevel=None, **kwargs):
    """Worker and beat log as every other process does (LOGGING: console lines, or JSON with
    LOG_FORMAT=json) instead of Celery's own format. The level is the more verbose of
    LOG_LEVEL and the command's --loglevel."""
    import logging
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
    if isinstance(loglevel, str):
        loglevel = logging.getLevelName(loglevel.upper())
    root = logging.getLogger()
    if isinstance(loglevel, int) and loglevel < root.level:
        root.setLevel(loglevel)


@worker_process_init.connect(weak=False)
def tracing_in_pool_process(**kwargs):
    """Tracing (config.tracing) starts in each prefork pool process, after the fork (and
    in a `-P solo` worker, whose pool sends this signal too)."""
    from config.tracing import tracing_setup

    tracing_setup()


@worker_init.connect(weak=False)
def tracing_in_worker(sender=None, **kwargs):
    """The pools that send no worker_process_init (`-P threads`, gevent, eventlet): the
    worker traces in itself."""
    from celery.concurrency import get_implementation

    pool = get_implementation(sender.pool_cls).__module__.rsplit(".", 1)[-1]
    if pool not in ("prefork", "solo"):
        from config.tracing import tracing_setup

        tracing_setup()


@app.on_after_configure.connect
def schedule_periodic_tasks(sender, **kwargs):
    """The beat schedule lives in code so that every deployment runs the same jobs. The
    frequent ones expire quickly, so a stalled worker does not wake up to a pile of them."""
    from django.conf import settings

    frequent = {
        "relay-outbox": ("history.tasks.relay_outbox", settings.RELAY_INTERVAL_SECONDS),
        "project-ledger": ("history.tasks.project_ledger", settings.PROJECTOR_INTERVAL_SECONDS),
        "expire-reservations": (
            "inventory.tasks.expire_reservations",
            settings.RESERVATION_EXPIRY_INTERVAL_SECONDS,
        ),
        "seal-ledger": ("history.tasks.seal_ledger", settings.LEDGER_SEAL_INTERVAL_SECONDS),
    }
    for name, (task, seconds) in frequent.items():
        sender.add_periodic_task(
            seconds, sender.signature(task), name=name, expires=max(2 * seconds, 1.0)
        )
    hourly = {
        "purge-idempotency-keys": "history.tasks.purge_idempotency_keys",
        "purge-published-outbox": "history.tasks.purge_published_outbox",
        "purge-consumed-events": "history.tasks.purge_consumed_events",
        "create-partitions": "history.tasks.create_partitions",
    }
    for name, task in hourly.items():
        sender.add_periodic_task(3600, sender.signature(task), name=name)
