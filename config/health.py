"""Liveness (`/healthz`) and readiness (`/readyz`: database, cache, broker, plus what the
apps report through `report_register`, such as the outbox backlog and the projection lag,
which is shown but does not fail readiness)."""

import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from kombu import Connection


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


def report_register(name: str, report: Callable[[], dict]) -> None:
    """Add `report()` to /readyz under `name` (run only when the database is up)."""
    _reports[name] = report


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    results, ready = {}, True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            results[name] = {"status": "ok"}
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            ready = False
            results[name] = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    body = {"status": "ok" if ready else "unavailable", "checks": results}
    if results["database"]["status"] == "ok":
        for name, report in _reports.items():
            body[name] = report()
    return JsonResponse(body, status=200 if ready else 503)
