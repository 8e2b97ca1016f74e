"""Benchmarks (`make bench-relay`, `make bench`): the real services on 127.0.0.1, but a
database and broker names of their own, so a benchmark never touches the development or test
data. `make bench` (bench/load.py) creates, migrates and seeds its database under these
settings with BENCH_DATABASE_URL pointing at `ordertrack_bench_http` (BENCH_HTTP_DATABASE_URL
overrides it); the server it measures runs config.settings.production."""

from .base import *  # noqa: F403
from .base import database_settings, env

DEBUG = False

DATABASES = {
    "default": database_settings(
        env.db("BENCH_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/ordertrack_bench")
    )
}
DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The bench seeds and measures as the superuser of its own database: no runtime role to grant.
DATABASE_RUNTIME_ROLE = ""

EVENT_BUS_URL = env("BENCH_EVENT_BUS_URL", default="amqp://guest:guest@127.0.0.1:5672//")
EVENT_EXCHANGE = env("BENCH_EVENT_EXCHANGE", default="ordertrack-bench.events")
CELERY_BROKER_URL = EVENT_BUS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {}

# The benchmark drives the relay itself; a kick would only start Celery tasks nobody runs.
RELAY_KICK_ON_COMMIT = False

LOGGING["root"]["level"] = env("LOG_LEVEL", default="WARNING")  # noqa: F405
