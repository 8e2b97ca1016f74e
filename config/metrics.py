"""`GET /metrics`: every metric in the Prometheus exposition format.

Request, response and latency metrics (`django_http_*`) come from django-prometheus's
middleware pair. The apps define their own metrics (the `ordertrack_*` ones are in
`history.metrics`) and register a hook with `on_scrape` to refresh the gauges they compute
from the database.

Multiprocess mode: prometheus_client switches to it when PROMETHEUS_MULTIPROC_DIR is set
before it is imported (gunicorn with several workers, Celery workers); every process then
writes its samples to files in that directory, and the view aggregates them all. See
config/gunicorn.py and the README ("Metrics").
"""

import hmac
import os
from collections.abc import Callable

import prometheus_client
from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

_scrape_hooks: list[Callable[[], None]] = []


def on_scrape(hook: Callable[[], None]) -> Callable[[], None]:
    """Register `hook` to run before every scrape: the apps create their known series and
    compute their database-backed gauges there (history.monitoring)."""
    _scrape_hooks.append(hook)
    return hook


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def registry() -> CollectorRegistry:
    """What to expose: in multiprocess mode, a fresh registry that aggregates every
    process's files; otherwise this process's default registry."""
    if multiprocess_dir():
        aggregate = CollectorRegistry()
        MultiProcessCollector(aggregate)
        return aggregate
    return prometheus_client.REGISTRY


def scrape_allowed(request) -> bool:
    """May this request read operational details (`/metrics`, `/readyz`'s checks)?"""
    return _refused(request) is None


def _refused(request) -> HttpResponse | None:
    """None if the request may read the metrics. With METRICS_PUBLIC anyone may; otherwise
    only a request carrying `Authorization: Bearer <METRICS_TOKEN>` (401 without a bearer
    token, 403 with a wrong one or when no token is configured)."""
    if settings.METRICS_PUBLIC:
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        response = HttpResponse("Authentication required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    expected = settings.METRICS_TOKEN
    if not expected or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    return None


@require_safe
def metrics_view(request):
    """`GET /metrics`: every metric, in the Prometheus exposition format."""
    refused = _refused(request)
    if refused is not None:
        return refused
    for hook in _scrape_hooks:
        hook()
    # The text format, or OpenMetrics when the scraper asks for it, as prometheus_client's
    # own exporter does.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = HttpResponse(encode(registry()), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
