"""JSON logs (config/logging.py): the lines a request, the relay and a span write, rendered
by the JSON formatter of the LOGGING setting into a captured stream, and the lines of a real
Celery worker started with LOG_FORMAT=json; the rest is real too (the test database, the
broker, the middleware stack)."""

import io
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import pytest
import structlog
from django.conf import settings
from django.db import connections
from django.test import Client
from kombu import Connection
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from config.celery_app import app
from config.logging import bound, logging_config
from config.tracing import tracing_setup, tracing_shutdown
from history.audit import Audit
from history.consumers import events_consume
from history.models import OrderLedgerEntry, OutboxEvent, Source
from history.relay import RELAY_TASK, Publisher, outbox_relay
from inventory.services import location_create
from orders.services import order_create
from tests.factories import ProductFactory

REQUEST_ID = "req-test-0123456789"


@pytest.fixture
def json_lines():
    """The root logger also writes to a buffer, with LOG_FORMAT=json's formatter; the
    fixture returns the lines written so far, parsed."""
    spec = dict(logging_config(fmt="json", level="INFO")["formatters"]["json"])
    formatter = spec.pop("()")(**spec)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [orjson.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        structlog.contextvars.clear_contextvars()


def finished(lines: list[dict]) -> dict:
    [line] = [line for line in lines if line.get("message") == "request_finished"]
    return line


@pytest.mark.django_db
def test_an_api_request_line_carries_its_request_id_user_view_and_order(
    api, make_order, json_lines
):
    # given
    order = make_order()

    # when
    response = api.get(f"/api/v1/orders/{order.pk}/", HTTP_X_REQUEST_ID=REQUEST_ID)

    # then: the user authenticated by token (inside DRF's view) is on the line
    assert response.status_code == 200
    line = finished(json_lines())
    assert line["request_id"] == REQUEST_ID == response["X-Request-ID"]
    assert line["user_id"] == api.user.pk
    assert line["view"] == "order-detail"
    assert line["order_id"] == order.pk
    assert line["code"] == 200
    assert line["request"] == f"GET /api/v1/orders/{order.pk}/"
    assert line["level"] == "info"
    assert line["logger"] == "django_structlog.middlewares.request"
    assert isinstance(line["duration_ms"], float)
    assert line["timestamp"].endswith("Z")


@pytest.mark.django_db
def test_a_generated_request_id_is_the_one_the_response_and_the_ledger_get(
    api, make_order, product, json_lines
):
    # given: an X-Request-ID the middleware refuses (too long), so it makes one of its own
    order = make_order(lines={product.sku: 10})

    # when
    response = api.post(
        f"/api/v1/orders/{order.pk}/adjust/",
        {"sku": product.sku, "delta": 5, "reason": "more"},
        format="json",
        HTTP_X_REQUEST_ID="x" * 100,
    )

    # then
    assert response.status_code == 200, response.content
    generated = response["X-Request-ID"]
    assert finished(json_lines())["request_id"] == generated
    entry = OrderLedgerEntry.objects.filter(order_id=order.pk).latest("version")
    assert entry.correlation_id == generated


@pytest.mark.django_db
def test_a_stock_move_line_carries_its_stock_level(api, product, json_lines):
    # given
    location_create(code="LOG-1", name="Logs")

    # when
    response = api.post(
        "/api/v1/stock/receive/",
        {"sku": product.sku, "location": "LOG-1", "quantity": 3, "reason": "delivery"},
        format="json",
        HTTP_X_REQUEST_ID=REQUEST_ID,
    )

    # then
    assert response.status_code == 200, response.content
    line = finished(json_lines())
    assert (line["stock_level"], line["view"]) == (f"{product.sku}@LOG-1", "stock-receive")
    assert (line["request_id"], line["user_id"]) == (REQUEST_ID, api.user.pk)


@pytest.mark.django_db
def test_a_session_user_is_on_the_line(user_with_role, json_lines):
    # given: an admin page, logged in by session
    client, user = Client(), user_with_role("order_staff")
    client.force_login(user)

    # when
    response = client.get("/admin/", HTTP_X_REQUEST_ID=REQUEST_ID)

    # then
    assert response.status_code == 200
    line = finished(json_lines())
    assert (line["request_id"], line["user_id"]) == (REQUEST_ID, user.pk)
    assert line["view"] == "admin:index"


@pytest.mark.django_db
def test_logging_does_not_look_the_session_user_up_itself(
    user_with_role, json_lines, django_assert_num_queries
):
    # given: a session cookie, on a view that never asks who the user is
    client = Client()
    client.force_login(user_with_role("order_staff"))

    # when
    with django_assert_num_queries(0):
        response = client.get("/healthz", HTTP_X_REQUEST_ID=REQUEST_ID)

    # then: no session read, no Vary: Cookie; the line says the user is not known
    assert response.status_code == 200
    assert "Vary" not in response
    line = finished(json_lines())
    assert (line["request_id"], line.get("user_id")) == (REQUEST_ID, None)


@pytest.mark.django_db
def test_a_library_line_written_during_the_request_carries_its_request_id(json_lines):
    # given: a line written outside any request
    logging.getLogger("config.tests").warning("a line from %s", "elsewhere")

    # when: Django's CSRF check refuses a login form and says so in its own logger
    response = Client(enforce_csrf_checks=True).post(
        "/admin/login/", {"username": "a", "password": "b"}, HTTP_X_REQUEST_ID=REQUEST_ID
    )

    # then
    assert response.status_code == 403
    lines = json_lines()
    assert lines[0]["message"] == "a line from elsewhere"
    assert "request_id" not in lines[0]
    [csrf] = [line for line in lines if line["logger"] == "django.security.csrf"]
    assert csrf["request_id"] == REQUEST_ID
    assert csrf["level"] == "warning"
    assert csrf["status_code"] == 403  # the record's `extra`, as fields


@pytest.mark.django_db
def test_a_refused_body_still_gets_its_line(api, json_lines):
    # when: refused (413) before the session, authentication and view run
    response = api.generic(
        "POST",
        "/api/v1/orders/",
        b"{}",
        content_type="application/json",
        HTTP_X_REQUEST_ID=REQUEST_ID,
        CONTENT_LENGTH=str(10**9),
    )

    # then
    assert response.status_code == 413
    line = finished(json_lines())
    assert (line["request_id"], line["code"], line["level"]) == (REQUEST_ID, 413, "warning")


@pytest.mark.django_db(transaction=True)
def test_a_dead_lettered_event_line_carries_the_event_its_aggregate_and_request(
    make_order, json_lines, settings
):
    # given: an order's event, and a broker nobody listens on
    settings.RELAY_MAX_ATTEMPTS = 1
    order = make_order()
    event = OutboxEvent.objects.get(aggregate_type="order", aggregate_id=str(order.pk))
    correlation_id = OrderLedgerEntry.objects.get(order_id=order.pk).correlation_id

    # when: the relay gives the event up
    result = outbox_relay(publisher=Publisher(url="amqp://guest:guest@127.0.0.1:1//"))

    # then
    assert result.dead_lettered >= 1
    [line] = [
        line
        for line in json_lines()
        if line.get("event_id") == str(event.event_id) and line["level"] == "error"
    ]
    assert line["logger"] == "history.relay"
    assert line["event_type"] == "order.created"
    assert line["order_id"] == str(order.pk)
    assert line.get("request_id", "") == correlation_id
    assert "dead-lettered" in line["message"]


def test_a_line_written_in_a_span_carries_its_trace_and_span_ids(json_lines):
    # given: a span of an SDK tracer (not installed globally: the current span is what counts)
    tracer = TracerProvider().get_tracer("config.tests")

    # when
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("config.tests").info("inside")
    logging.getLogger("config.tests").info("outside")

    # then
    inside, outside = json_lines()
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in outside


def test_structlog_lines_and_bound_fields_render_as_json(json_lines):
    # when
    with structlog.contextvars.bound_contextvars(event_id=str(uuid.UUID(int=1))):
        structlog.get_logger("config.tests").info("with_fields", count=3)

    # then
    [line] = json_lines()
    assert line["message"] == "with_fields"
    assert line["count"] == 3
    assert line["event_id"] == str(uuid.UUID(int=1))
    assert line["logger"] == "config.tests"


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config(fmt="xml", level="INFO")


UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens on port 1


@pytest.fixture
def json_worker():
    """A Celery worker (production settings, LOG_FORMAT=json) on the test database and the
    run's broker, on a queue of its own, whose relay finds no event broker (port 1) and
    gives an event up at the first failure. Yields (queue, read the worker's JSON lines)."""
    work = Path(tempfile.mkdtemp(prefix="ordertrack-logs-"))
    queue = f"ordertrack-test-logs-{uuid.uuid4().hex[:10]}"
    database = connections["default"].settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:"
            f"{database['PORT'] or 5432}/{database['NAME']}"
        ),
        "DATABASE_RUNTIME_ROLE": "",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "EVENT_BUS_URL": UNREACHABLE_BROKER,
        "EVENT_EXCHANGE": settings.EVENT_EXCHANGE,
        "RELAY_MAX_ATTEMPTS": "1",
        "RELAY_CONNECT_TIMEOUT": "1",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    for name in ("PYTEST_XDIST_WORKER", "ORDERTRACK_TEST_RUN_ID", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    log = work / "worker.log"
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo"),
            *("-n", f"{queue}@%h", "--without-mingle", "--without-gossip"),
            "--without-heartbeat",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def lines() -> list[dict]:
        text = log.read_text(errors="replace")
        return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]

    try:
        deadline = time.monotonic() + 60
        while not any(" ready." in line.get("message", "") for line in lines()):
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield queue, lines
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as connection:
            connection.default_channel.queue_delete(queue)
        print(log.read_text(errors="replace")[-5000:])  # shown when the test fails


@pytest.mark.django_db(transaction=True)
def test_a_worker_logs_json_with_the_task_the_queuing_request_and_the_event(json_worker):
    # given: an order written by a request, whose event the worker's relay will give up on
    queue, worker_lines = json_worker
    audit = Audit(actor="tester", source=Source.API, correlation_id="req-of-the-write")
    order = order_create(
        customer_id=None, reference="", lines={ProductFactory().sku: 1}, audit=audit
    )
    event = OutboxEvent.objects.get(aggregate_type="order", aggregate_id=str(order.pk))

    # when: another request queues the relay task (who and which request travel in the
    # headers, not the request's view and ids)
    with bound(request_id="req-that-queued", user_id=7, view="order-adjust", order_id=99):
        task_id = app.send_task(RELAY_TASK, queue=queue).id
    deadline = time.monotonic() + 30
    while not [line for line in worker_lines() if line.get("message") == "task_succeeded"]:
        assert time.monotonic() < deadline, worker_lines()
        time.sleep(0.1)

    # then: every line of the task carries its id and the context of the request that queued
    # it; the relay's line about the event carries the event, its order and the request that
    # wrote it
    lines = [line for line in worker_lines() if line.get("task_id") == task_id]
    [succeeded] = [line for line in lines if line["message"] == "task_succeeded"]
    assert (succeeded["request_id"], succeeded["user_id"]) == ("req-that-queued", 7)
    assert succeeded["task"] == RELAY_TASK
    assert "view" not in succeeded and "order_id" not in succeeded
    assert isinstance(succeeded["duration_ms"], int)
    [dead] = [line for line in lines if line.get("event_id") == str(event.event_id)]
    assert dead["logger"] == "history.relay" and dead["level"] == "error"
    assert "dead-lettered" in dead["message"]
    assert (dead["event_type"], dead["order_id"]) == ("order.created", str(order.pk))
    assert dead["request_id"] == "req-of-the-write"
    [unavailable] = [line for line in lines if line["logger"] == "history.tasks"]
    assert unavailable["level"] == "warning"
    assert unavailable["request_id"] == "req-that-queued"


@pytest.mark.django_db(transaction=True)
def test_a_consumer_line_carries_the_event_it_handles(consumer_queue, json_lines, settings):
    # given: an order's event on the broker, for a consumer whose handler fails once
    settings.CONSUMER_RETRY_DELAY_SECONDS = 0
    events_consume(
        queue_name=consumer_queue, binding="order.*", handler=lambda e: None, idle_timeout=0.1
    )
    audit = Audit(actor="tester", source=Source.API, correlation_id="req-of-the-order")
    order = order_create(
        customer_id=None, reference="", lines={ProductFactory().sku: 1}, audit=audit
    )
    assert outbox_relay().published == 1
    event = OutboxEvent.objects.get(aggregate_type="order", aggregate_id=str(order.pk))
    calls = []

    def handler(received: dict) -> None:
        calls.append(received["id"])
        logging.getLogger("config.tests").info("handling")
        if len(calls) == 1:
            raise RuntimeError("not yet")

    # when
    events_consume(queue_name=consumer_queue, binding="order.*", handler=handler, idle_timeout=1)

    # then: the handler's own lines and the consumer's failure line name the event
    lines = json_lines()
    handling = [line for line in lines if line["message"] == "handling"]
    [failed] = [line for line in lines if line["logger"] == "history.consumers"]
    assert len(handling) == 2
    for line in (*handling, failed):
        assert line["event_id"] == str(event.event_id)
        assert line["event_type"] == "order.created"
        assert line["order_id"] == str(order.pk)
        assert line["request_id"] == "req-of-the-order"
        assert line["consumer"] == consumer_queue
    assert failed["level"] == "error" and "RuntimeError: not yet" in failed["exception"]


@pytest.mark.django_db(transaction=True)
def test_with_tracing_on_a_request_line_carries_its_server_span(api, make_order, json_lines):
    # given: tracing on (config.tracing, the SDK exporting to memory)
    order = make_order()
    exporter = InMemorySpanExporter()
    tracing_setup(span_processor=SimpleSpanProcessor(exporter))
    try:
        # when
        response = api.get(f"/api/v1/orders/{order.pk}/", HTTP_X_REQUEST_ID=REQUEST_ID)
    finally:
        tracing_shutdown()

    # then: the line is in the trace of the request's server span
    assert response.status_code == 200
    [server] = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    line = finished(json_lines())
    assert line["trace_id"] == format(server.context.trace_id, "032x")
    assert line["span_id"] == format(server.context.span_id, "016x")
    assert line["request_id"] == REQUEST_ID


@pytest.mark.django_db
def test_a_receiver_of_the_finished_signal_still_adds_to_the_line(api, make_order, json_lines):
    # given: a receiver of django-structlog's signal, besides config.logging's own
    from django_structlog import signals

    order = make_order()

    def extra(sender, request, logger, response, log_kwargs, **kwargs):
        log_kwargs["extra_field"] = response.status_code

    signals.bind_extra_request_finished_metadata.connect(extra)
    try:
        # when
        response = api.get(f"/api/v1/orders/{order.pk}/", HTTP_X_REQUEST_ID=REQUEST_ID)
    finally:
        signals.bind_extra_request_finished_metadata.disconnect(extra)

    # then: the line has it, and still its own fields
    line = finished(json_lines())
    assert line["extra_field"] == 200 == response.status_code
    assert line["request_id"] == REQUEST_ID
    assert line["code"] == 200 and "duration_ms" in line
