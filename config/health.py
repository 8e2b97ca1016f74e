"""Liveness (`/healthz`) and readiness (`/readyz`: database, cache, broker, plus what the
apps report through `report_register`, such as the outbox backlog and the projection lag,
which is shown but does not fail readiness).

Anyone may ask whether the service is ready, and gets only that: `{"status": "ok"}` (200)
or `{"status": "unavailable"}` (503). The checks' details and the reports need what
`/metrics` needs (the metrics token, unless METRICS_PUBLIC). A process checks at most once
every READYZ_CACHE_SECONDS, so probes cannot make it open a broker connection and run
queries on every hit; errors are named by their type only (the messages, which carry hosts
and role names, go to the log)."""

import logging
import threading
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from kombu import Connection

from config.metrics import READY, READY_CHECK, on_scrape, scrape_allowed

logger = logging.getLogger(__name__)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    probe_key, probe = f"readyz:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(probe_key, probe, timeout=5)
    if cache.get(probe_key) != probe:
        raise RuntimeError("cache did not return the value just written")
    cache.delete(probe_key)


def _check_broker() -> None:
    options = (
        settings.FILESYSTEM_TRANSPORT_OPTIONS
        if settings.EVENT_BUS_URL.startswith("filesystem")
        else {}
    )
    with Connection(settings.EVENT_BUS_URL, connect_timeout=2, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


CHECKS = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}
_reports: dict[str, Callable[[], dict]] = {}


def check_register(name: str, check: Callable[[], None]) -> None:
    """Add `check()` to /readyz's checks: not ready when it raises."""
    CHECKS[name] = check


def report_register(name: str, report: Callable[[], dict]) -> None:
    """Add `report()` to /readyz under `name` (run only when the database is up)."""
    _reports[name] = report


def healthz(request):
    return JsonResponse({"status": "ok"})


def _readiness() -> dict:
    results, ready = {}, True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            results[name] = {"status": "ok"}
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            ready = False
            logger.warning("readiness: %s is down: %s", name, exc)
            results[name] = {"status": "down", "error": type(exc).__name__}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
        READY_CHECK.labels(name).set(1 if results[name]["status"] == "ok" else 0)
    READY.set(1 if ready else 0)
    body = {"status": "ok" if ready else "unavailable", "checks": results}
    if results["database"]["status"] == "ok":
        for name, report in _reports.items():
            body[name] = report()
    return body


_last: tuple[float, dict] | None = None
_lock = threading.Lock()


def _recent_readiness() -> dict:
    """The last result if younger than READYZ_CACHE_SECONDS, else a fresh one (one thread
    checks; the others wait for it)."""
    global _last
    with _lock:
        if _last is None or time.monotonic() - _last[0] >= settings.READYZ_CACHE_SECONDS:
            _last = (time.monotonic(), _readiness())
        return _last[1]


@on_scrape
def _readiness_scrape() -> None:
    """Every scrape exports readiness (`ordertrack_ready`), checked at most once every
    READYZ_CACHE_SECONDS as for /readyz, so an alert needs no probe of its own."""
    _recent_readiness()


def readyz(request):
    body = _recent_readiness()
    status = 200 if body["status"] == "ok" else 503
    if not scrape_allowed(request):
        body = {"status": body["status"]}
    return JsonResponse(body, status=status)
