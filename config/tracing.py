"""Tracing with OpenTelemetry: set up once per process, and the few helpers the code uses.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set:
the entry points (config/wsgi.py, each Celery worker process, `relay_outbox`,
`consume_events`) call `tracing_setup()`, which then does nothing, and every helper here
costs one check of a module global: no SDK, no instrumentation, no context lookups. The
tests turn it on with the SDK's in-memory exporter (`tracing_setup(span_processor=...)`).

When on, the official instrumentations trace Django (the request), psycopg (every SQL
statement), Redis (the cache) and Celery (task publish and run); the code adds the rest:
- `traced`: a span per public service (`order_adjust`, `stock_receive`, ...);
- `trace_context()`: the current span's W3C `traceparent`/`tracestate`, which the recorder
  stores with each outbox row in the same transaction;
- `span()`: the relay's publish span (kind PRODUCER, linked to each event's originating
  span with `link()`, not parented: one batch mixes events of many requests) and the
  consumers' process span (kind CONSUMER, continuing the trace of the event's
  `traceparent`).

Export: OTLP over HTTP/protobuf, batched, to the endpoint in the environment (the
exporter reads the `OTEL_EXPORTER_OTLP_*` variables itself; `OTEL_TRACES_SAMPLER` and
`OTEL_RESOURCE_ATTRIBUTES` are honoured too). The resource names the service
(`OTEL_SERVICE_NAME`, default `ordertrack`) and its version (the installed package's).
"""

import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

SERVICE_NAME_DEFAULT = "ordertrack"
# The correlation id (X-Request-ID, stored in the ledger) on the request's and the
# services' spans.
CORRELATION_ID = "ordertrack.correlation_id"

F = TypeVar("F", bound=Callable[..., Any])


class _Tracing:
    """What `tracing_setup` made: the provider, this project's tracer, the instrumentors
    (to undo them) and the API functions the helpers call."""

    def __init__(self, provider, instrumentors: list):
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.instrumentors = instrumentors
        self.tracer = provider.get_tracer("ordertrack", _version())
        self.propagator = TraceContextTextMapPropagator()
        self.trace = trace
        self.context = context


_tracing: _Tracing | None = None


def enabled() -> bool:
    return _tracing is not None


def endpoint_configured() -> bool:
    return (
        bool(
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
        and os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true"
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ordertrack")
    except PackageNotFoundError:
        return "unknown"


def tracing_setup(*, span_processor=None, link_limit: int | None = None) -> bool:
    """Turn tracing on in this process, once: with OTLP export when the endpoint is set,
    or with the `span_processor` given (the tests'). Call it after the process forked (a
    gunicorn worker, a Celery pool process), before the Django app handles anything.
    Returns whether tracing is on."""
    global _tracing
    if _tracing is not None:
        return True
    if span_processor is None and not endpoint_configured():
        return False
    from django.conf import settings
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider

    if span_processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        span_processor = BatchSpanProcessor(OTLPSpanExporter())
    resource = Resource.create(
        {
            SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME_DEFAULT,
            SERVICE_VERSION: _version(),
        }
    )
    # A relay batch links to every event it carries: allow a link per event of a full
    # batch (the SDK's default keeps 128) unless OTEL_SPAN_LINK_COUNT_LIMIT says otherwise.
    links = link_limit or int(
        os.environ.get("OTEL_SPAN_LINK_COUNT_LIMIT") or max(128, settings.RELAY_BATCH_SIZE)
    )
    provider = TracerProvider(resource=resource, span_limits=SpanLimits(max_links=links))
    provider.add_span_processor(span_processor)
    instrumentors = [
        DjangoInstrumentor(),
        PsycopgInstrumentor(),
        RedisInstrumentor(),
        CeleryInstrumentor(),
    ]
    for instrumentor in instrumentors:
        # skip_dep_check: the versions are pinned together in requirements/*.txt.
        instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
    _tracing = _Tracing(provider, instrumentors)
    _connections_reopened()
    if not _provider_is_set():
        _tracing.trace.set_tracer_provider(provider)
    logger.info("tracing on: %s", resource.attributes.get(SERVICE_NAME))
    return True


def _provider_is_set() -> bool:
    from opentelemetry import trace

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def tracing_shutdown() -> None:
    """Undo `tracing_setup`: remove the instrumentation, flush and stop the provider (the
    tests, between cases)."""
    global _tracing
    if _tracing is None:
        return
    state, _tracing = _tracing, None
    for instrumentor in state.instrumentors:
        instrumentor.uninstrument()
    _connections_reopened()  # a connection opened while instrumented keeps tracing
    state.provider.shutdown()


def _connections_reopened() -> None:
    """psycopg is instrumented per connection, when it connects: close this thread's
    database connections (none in a transaction) so that the next query opens one that
    follows the instrumentation's state."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def traced(func: F) -> F:
    """A span named after the function around each call (a service). With tracing off it
    is one extra call and one check. The `audit` keyword argument's correlation id, when
    there is one, becomes the span's `ordertrack.correlation_id`."""
    name = func.__name__
    attributes = {"code.function.name": f"{func.__module__}.{func.__qualname__}"}

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if _tracing is None:
            return func(*args, **kwargs)
        with _tracing.tracer.start_as_current_span(name, attributes=attributes) as span:
            correlation_id = getattr(kwargs.get("audit"), "correlation_id", "")
            if correlation_id:
                span.set_attribute(CORRELATION_ID, correlation_id)
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def correlation_id_set(value: str) -> None:
    """Put the request's correlation id on the current span (the request's)."""
    if _tracing is not None and value:
        _tracing.trace.get_current_span().set_attribute(CORRELATION_ID, value)


def trace_context() -> tuple[str, str]:
    """The current span's W3C `traceparent` and `tracestate` ("" without one, or when
    tracing is off)."""
    if _tracing is None:
        return "", ""
    carrier: dict[str, str] = {}
    _tracing.propagator.inject(carrier)
    return carrier.get("traceparent", ""), carrier.get("tracestate", "")


def link(traceparent: str, tracestate: str = "", attributes: Mapping | None = None):
    """A span link to the span a `traceparent` names (None if it names none)."""
    if _tracing is None or not traceparent:
        return None
    context = _context_of({"traceparent": traceparent, "tracestate": tracestate})
    span_context = _tracing.trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return None
    return _tracing.trace.Link(span_context, attributes=dict(attributes or {}))


def _context_of(carrier: Mapping[str, Any]):
    return _tracing.propagator.extract({key: str(value) for key, value in carrier.items() if value})


def span(
    name: str,
    *,
    kind: str = "internal",
    parent: Mapping[str, Any] | None = None,
    links: Iterable = (),
    attributes: Mapping[str, Any] | None = None,
):
    """A context manager: a span made current for the block, yielding it (None when
    tracing is off). `kind` is internal, producer or consumer; `parent`, a carrier holding
    a `traceparent` (and `tracestate`), makes the span continue that trace (a carrier
    without one starts a new trace); `links` are `link()`s, Nones skipped."""
    if _tracing is None:
        return nullcontext()
    context = _context_of(parent) if parent is not None else None
    return _tracing.tracer.start_as_current_span(
        name,
        context=context,
        kind=getattr(_tracing.trace.SpanKind, kind.upper()),
        links=[item for item in links if item is not None],
        attributes=dict(attributes or {}),
    )


def span_failed(span, description: str) -> None:
    """Mark a span of `span()` as failed (an error status with `description`)."""
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, description))


@contextmanager
def detached() -> Iterator[None]:
    """Run the block outside the current trace (what it starts is a trace of its own)."""
    if _tracing is None:
        yield
        return
    token = _tracing.context.attach(_tracing.context.Context())
    try:
        yield
    finally:
        _tracing.context.detach(token)
