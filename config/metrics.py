"""`GET /metrics`: every metric in the Prometheus exposition format.

Every request is one observation of `ordertrack_http_request_duration_seconds{view, method,
status}` (HttpMetricsMiddleware, first in the stack): its `_count` is the request rate by
view, method and status, its buckets the latency. django-prometheus's request middleware
pair did 19 counter and histogram updates a request, a tenth of a cached order read
(bench/README.md, "Round two"), for series the dashboards and alerts did not need; its
database and cache metrics stay. /readyz's result is exported too (`ordertrack_ready`,
`ordertrack_ready_check{check}`, set by config.health on every readiness check and scrape).
The apps define their own metrics (the `ordertrack_*` ones are in `history.metrics`) and
register a hook with `on_scrape` to refresh the gauges they compute from the database.

Multiprocess mode: prometheus_client switches to it when PROMETHEUS_MULTIPROC_DIR is set
before it is imported (gunicorn with several workers, Celery workers); every process then
writes its samples to files in that directory, and the view aggregates them all. See
config/gunicorn.py and the README ("Metrics").
"""

import hmac
import os
import time
from collections.abc import Callable

import prometheus_client
from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

_scrape_hooks: list[Callable[[], None]] = []

HTTP_REQUEST_DURATION = Histogram(
    "ordertrack_http_request_duration_seconds",
    "Time from the request entering the middleware stack to its response, by view name, "
    "method and status code.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Set by whichever process last checked readiness (config.health), as the other gauges.
READY = Gauge(
    "ordertrack_ready",
    "1 when the last readiness check (/readyz) passed, 0 when it failed.",
    multiprocess_mode="livemostrecent",
)
READY_CHECK = Gauge(
    "ordertrack_ready_check",
    "1 when the readiness check passed at its last run, 0 when it failed, by check.",
    ["check"],
    multiprocess_mode="livemostrecent",
)


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


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_durations: dict[tuple[str, str, int], object] = {}


class HttpMetricsMiddleware:
    """Times each request from entering the stack to its response, by the view's URL name
    (`<unnamed view>` when no URL matched, so that made-up paths add no series), the method
    (`<invalid method>` outside HTTP's) and the status code."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match is not None and match.view_name else "<unnamed view>"
        method = request.method if request.method in _METHODS else "<invalid method>"
        key = (view, method, response.status_code)
        child = _durations.get(key)
        if child is None:  # `labels()` takes a lock and validates: once per series
            child = _durations[key] = HTTP_REQUEST_DURATION.labels(view, method, str(key[2]))
        child.observe(time.perf_counter() - started)
        return response
