import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("ordertrack")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The beat schedule lives in code so that every deployment runs the same jobs.
app.conf.beat_schedule = {
    "purge-idempotency-keys": {
        "task": "history.tasks.purge_idempotency_keys",
        "schedule": 60 * 60,
    },
}
