"""Fails fast, naming the service, when PostgreSQL, Redis or RabbitMQ is not reachable, or
when Debian's Chromium (which the browser tests in tests/browser/ drive) or promtool (which
checks the alert rules, tests/test_observability.py) is not installed.

`make test` runs this before pytest; the root conftest runs it too, so a missing service is
a clear failure and never a skip."""

import os
import shutil
import socket
import sys
from urllib.parse import urlparse

SERVICES = [
    (
        "PostgreSQL",
        os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ordertrack"),
        5432,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    (
        "Redis",
        os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        6379,
        'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
    ),
    (
        "RabbitMQ",
        os.environ.get("TEST_CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
        5672,
        "rabbitmq-server -detached",
    ),
]

# The browser tests launch this binary (tests/browser/conftest.py); never a downloaded build.
CHROMIUM = "/usr/bin/chromium"


def missing_services() -> list[str]:
    problems = []
    for name, url, default_port, hint in SERVICES:
        parsed = urlparse(url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
        try:
            with socket.create_connection((host, port), timeout=2):
                pass
        except OSError as exc:
            problems.append(f"{name} is not reachable at {host}:{port} ({exc}). Start it: {hint}")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        problems.append(
            f"Chromium is not installed at {CHROMIUM} (the browser tests drive it)."
            " Install it: apt-get install -y chromium (.ci/run does)"
        )
    if shutil.which("promtool") is None:
        problems.append(
            "promtool is not installed (it checks the alert rules in deploy/prometheus)."
            " Install it: apt-get install -y prometheus (.ci/run does)"
        )
    return problems


if __name__ == "__main__":
    problems = missing_services()
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if problems:
        print("The test suite needs all of them; it never skips.", file=sys.stderr)
        sys.exit(1)
    print(
        f"PostgreSQL, Redis and RabbitMQ are reachable; Chromium is at {CHROMIUM};"
        f" promtool is at {shutil.which('promtool')}."
    )
