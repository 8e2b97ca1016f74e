"""Tests run against the real services on 127.0.0.1 (PostgreSQL, Redis, RabbitMQ).
Every run gets its own database, Redis key prefix and broker names, so runs cannot collide."""

import os
import tempfile
import uuid

from .base import *  # noqa: F403
from .base import database_settings, env

RUN_ID = os.environ.setdefault("ORDERTRACK_TEST_RUN_ID", uuid.uuid4().hex[:12])
# pytest-xdist workers share the run id but must not share broker names or cache keys.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")

DATABASES = {
    "default": database_settings(
        env.db("TEST_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/ordertrack")
    )
}
DATABASES["default"]["TEST"] = {"NAME": f"test_ordertrack_{RUN_ID}"}
DATABASES["default"]["CONN_MAX_AGE"] = 0
# The role the tests run as, like the application (tests/database.py).
DATABASE_RUNTIME_ROLE = env("TEST_DATABASE_RUNTIME_ROLE", default="ordertrack_test_app")

# One signing key per run, generated on first use by whichever worker needs it first.
LEDGER_SIGNING_KEY_FILE = os.path.join(
    tempfile.gettempdir(), f"ordertrack-test-{RUN_ID}", "ledger-signing-key.pem"
)

REDIS_URL = env("TEST_REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"ordertrack-test-{RUN_ID}-{WORKER}",
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            "IGNORE_EXCEPTIONS": True,
        },
    }
}

CELERY_BROKER_URL = env("TEST_CELERY_BROKER_URL", default="amqp://guest:guest@127.0.0.1:5672//")
EVENT_BUS_URL = env("TEST_EVENT_BUS_URL", default="amqp://guest:guest@127.0.0.1:5672//")
EVENT_EXCHANGE = f"ordertrack-test-{RUN_ID}-{WORKER}.events"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_TASK_ALWAYS_EAGER = False

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
RELAY_KICK_ON_COMMIT = False
RELAY_CONFIRM_TIMEOUT = 5.0
RELAY_CONNECT_TIMEOUT = 1.0
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise")]  # noqa: F405
# Each test sees a fresh readiness check (a test of the cache sets it back).
READYZ_CACHE_SECONDS = 0
