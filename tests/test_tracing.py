"""Tracing through the outbox (config.tracing), with the SDK's in-memory exporter and the
real PostgreSQL, Redis and RabbitMQ: one write request is one trace (the view, the
service, the SQL, the cache), its traceparent is stored with the outbox row, the relay's
publish span links to it and the consumer's span continues it."""

import os
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from importlib.metadata import version

import orjson
import pytest
from django.core import mail
from django.db import connection
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from config.tracing import CORRELATION_ID, tracing_setup, tracing_shutdown
from history.consumers import events_consume
from history.models import OutboxEvent
from history.relay import outbox_relay
from inventory.tasks import expire_reservations
from orders.consumers import notify_order_cancelled
from tests.broker import EventCollector
from tools.trace_view import Traces, handler_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing_setup(span_processor=SimpleSpanProcessor(exporter))
    yield exporter
    tracing_shutdown()


@pytest.fixture
def collector():
    collector = EventCollector()
    yield collector
    collector.close()


def _one(spans, **match):
    found = [s for s in spans if all(_get(s, key) == value for key, value in match.items())]
    assert len(found) == 1, (match, [(s.name, s.kind) for s in spans])
    return found[0]


def _get(span, key):
    return span.kind if key == "kind" else getattr(span, key)


def _traceparent(span) -> str:
    """Version, trace id and span id (the flags after them: sampled, and maybe random)."""
    return f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-"


def _is_sql(span) -> bool:
    return "postgresql" in (span.attributes.get("db.system"), span.attributes.get("db.system.name"))


def _is_redis(span) -> bool:
    return "redis" in (span.attributes.get("db.system"), span.attributes.get("db.system.name"))


def _consume(queue: str, *, handler=lambda event: None, max_messages=None) -> None:
    events_consume(
        queue_name=queue,
        binding="order.*",
        handler=handler,
        max_messages=max_messages,
        idle_timeout=0.5,
    )


def test_a_write_request_is_one_trace_from_the_view_through_the_relay_to_the_consumer(
    spans, api, make_order, product, collector, consumer_queue
):
    # given
    order = make_order(lines={product.sku: 100})
    _consume(consumer_queue)  # the queue exists and is bound before the relay publishes
    outbox_relay()
    _consume(consumer_queue)  # the order's creation, consumed
    collector.collect()
    spans.clear()

    # when: a write request
    response = api.post(
        f"/api/v1/orders/{order.pk}/adjust/",
        {"sku": product.sku, "delta": 5, "reason": "more"},
        format="json",
        HTTP_X_REQUEST_ID="trace-me-1",
    )

    # then: the view, the service, its SQL and the cache in one trace
    assert response.status_code == 200, response.content
    request = spans.get_finished_spans()
    view = _one(request, kind=SpanKind.SERVER)
    trace_id = view.context.trace_id
    assert all(s.context.trace_id == trace_id for s in request)
    service = _one(request, name="order_adjust")
    assert view.attributes[CORRELATION_ID] == service.attributes[CORRELATION_ID] == "trace-me-1"
    ids = {s.context.span_id: s for s in request}
    ancestor = service
    while ancestor.parent is not None:  # the service runs under the view
        ancestor = ids[ancestor.parent.span_id]
    assert ancestor is view
    under_service = [s for s in request if s.parent and s.parent.span_id == service.context.span_id]
    statements = [s.attributes.get("db.statement", "") for s in under_service if _is_sql(s)]
    assert any("INSERT INTO history_outboxevent" in text for text in statements), statements
    assert any(_is_redis(s) for s in request), [s.name for s in request]

    # then: the outbox row holds the service span's traceparent, written by the same INSERT
    row = OutboxEvent.objects.get(aggregate_id=str(order.pk), aggregate_version=2)
    assert row.traceparent.startswith(_traceparent(service))

    # when: the relay publishes it
    spans.clear()
    assert outbox_relay().published == 1

    # then: its span links to the request's span, in a trace of its own
    publish = _one(spans.get_finished_spans(), kind=SpanKind.PRODUCER)
    assert publish.context.trace_id != trace_id
    assert publish.parent is None
    assert [(link.context.trace_id, link.context.span_id) for link in publish.links] == [
        (trace_id, service.context.span_id)
    ]
    assert publish.links[0].attributes["messaging.message.id"] == str(row.event_id)
    assert publish.attributes["messaging.batch.message_count"] == 1
    event = collector.collect(expected=2)[-1]  # (the first: the order's creation)
    assert event["id"] == str(row.event_id)
    assert event["traceparent"] == row.traceparent
    assert event["_properties"]["application_headers"]["traceparent"] == row.traceparent

    # when: a consumer reads it
    spans.clear()
    _consume(consumer_queue, max_messages=1)

    # then: the consumer's span continues the request's trace, and its SQL is under it
    consumed = spans.get_finished_spans()
    process = _one(consumed, kind=SpanKind.CONSUMER)
    assert process.context.trace_id == trace_id
    assert process.parent.span_id == service.context.span_id
    assert process.attributes["cloudevents.event_id"] == str(row.event_id)
    assert any(_is_sql(s) and s.parent.span_id == process.context.span_id for s in consumed), [
        s.name for s in consumed
    ]


def test_one_relay_batch_links_to_each_request_and_the_notification_consumer_continues_its_trace(
    spans, api, make_order, product, consumer_queue, settings
):
    # given: two orders changed by two requests, relayed in one batch
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    first, second = make_order(lines={product.sku: 1}), make_order(lines={product.sku: 2})
    _consume(consumer_queue)
    outbox_relay()
    _consume(consumer_queue)
    spans.clear()
    for order in (first, second):
        response = api.post(f"/api/v1/orders/{order.pk}/cancel/", {"reason": "r"}, format="json")
        assert response.status_code == 200, response.content
    requests = {
        s.context.trace_id: s for s in spans.get_finished_spans() if s.name == "order_cancel"
    }
    assert len(requests) == 2

    # when
    spans.clear()
    outbox_relay()
    published = spans.get_finished_spans()
    spans.clear()
    _consume(consumer_queue, handler=notify_order_cancelled, max_messages=2)

    # then: one publish span, linked to both requests' service spans
    publish = _one(published, kind=SpanKind.PRODUCER)
    assert {(link.context.trace_id, link.context.span_id) for link in publish.links} == {
        (trace_id, span.context.span_id) for trace_id, span in requests.items()
    }
    # then: each notification is in the trace of the request that cancelled the order
    consumed = spans.get_finished_spans()
    notifications = [s for s in consumed if s.name == "notify_order_cancelled"]
    assert {s.context.trace_id for s in notifications} == set(requests)
    for notification in notifications:
        process = next(s for s in consumed if s.context.span_id == notification.parent.span_id)
        assert process.kind == SpanKind.CONSUMER
        assert process.parent.span_id == requests[process.context.trace_id].context.span_id
    assert len(mail.outbox) == 2


def test_celery_tasks_get_spans(spans):
    # when
    expire_reservations.apply()

    # then
    finished = spans.get_finished_spans()
    task = _one(finished, name="run/inventory.tasks.expire_reservations")
    service = _one(finished, name="reservations_expire")
    assert service.parent.span_id == task.context.span_id


def test_off_without_an_endpoint_events_carry_no_trace_context(audit, make_order, collector):
    # given: no OTEL_EXPORTER_OTLP_ENDPOINT in the tests' environment
    assert tracing_setup() is False

    # when
    order = make_order()
    outbox_relay()

    # then
    row = OutboxEvent.objects.get(aggregate_id=str(order.pk))
    assert (row.traceparent, row.tracestate) == ("", "")
    (event,) = collector.collect(expected=1)
    assert "traceparent" not in event
    assert not (event["_properties"].get("application_headers") or {}).get("traceparent")
    assert orjson.loads(orjson.dumps(event["data"]))["order_id"] == order.pk


@pytest.fixture
def otlp_endpoint():
    """tools/trace_view.py's OTLP/HTTP receiver, the one a developer runs."""
    traces = Traces()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(traces))
    server.traces = traces
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_relay_outbox_exports_its_spans_over_otlp_when_the_endpoint_is_set(
    make_order, collector, otlp_endpoint, settings
):
    # given: an event to relay, and a process started with the endpoint set
    order = make_order()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/"
        + connection.settings_dict["NAME"],
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_endpoint.server_port}",
        "OTEL_SERVICE_NAME": "ordertrack-relay",
    }

    # when
    done = subprocess.run(
        [sys.executable, "manage.py", "relay_outbox", "--once"],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then: the event went out, and the relay's spans reached the collector at exit
    assert done.returncode == 0, done.stderr
    assert [e["subject"] for e in collector.collect(expected=1)] == [str(order.pk)]
    assert otlp_endpoint.traces.paths == {"/v1/traces"}
    received = otlp_endpoint.traces.all_spans()
    assert {resource["service.name"] for resource, _ in received} == {"ordertrack-relay"}
    assert {resource["service.version"] for resource, _ in received} == {version("ordertrack")}
    exported = [span for _, span in received]
    publish = [s for s in exported if s.name == f"publish {settings.EVENT_EXCHANGE}"]
    assert len(publish) == 1 and publish[0].kind == publish[0].SPAN_KIND_PRODUCER
    assert any(s.parent_span_id == publish[0].span_id for s in exported)  # its SQL
    tree = otlp_endpoint.traces.render(publish[0].trace_id.hex()).splitlines()
    line = next(i for i, text in enumerate(tree) if text.lstrip().startswith("publish "))
    assert "[ordertrack-relay, producer]" in tree[line]
    assert tree[line + 1].startswith(tree[line][: tree[line].index("publish")] + "  ")
