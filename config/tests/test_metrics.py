"""`/metrics`: django-prometheus request metrics plus the `ordertrack_*` domain metrics, read
from the real PostgreSQL, Redis and RabbitMQ of the test run; multiprocess mode in
subprocesses sharing a PROMETHEUS_MULTIPROC_DIR."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from config import gunicorn as gunicorn_config
from history import cache as aggregate_cache
from history import metrics
from history.models import Source
from history.projector import projections_run
from history.relay import outbox_relay
from inventory.services import location_create, stock_issue, stock_receive, stock_set_thresholds
from orders.services import order_adjust, order_create
from tests.broker import EventCollector
from tests.factories import ProductFactory

BASE_DIR = Path(settings.BASE_DIR)


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client=None, **headers) -> dict[tuple[str, tuple], float]:
    """GET /metrics and parse it: {(sample name, sorted labels): value}."""
    response = (client or Client()).get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# --- the endpoint ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_is_served_as_prometheus_text_with_every_metric_name():
    # when
    Client().get("/healthz")
    response = Client().get("/metrics")

    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert response["Cache-Control"] == "no-store"
    body = response.content.decode()
    for name in (
        "ordertrack_adjustments_total",
        "ordertrack_events_published_total",
        "ordertrack_events_dead_lettered_total",
        "ordertrack_relay_lag_seconds_bucket",
        "ordertrack_relay_publish_seconds_bucket",
        "ordertrack_cache_requests_total",
        "ordertrack_projection_lag_events",
        "ordertrack_projection_lag_seconds",
        "ordertrack_outbox_pending",
        "ordertrack_outbox_dead_lettered",
        "ordertrack_outbox_oldest_pending_seconds",
        "ordertrack_http_request_duration_seconds_count",
    ):
        assert f"\n{name}" in body, name
    assert (
        'ordertrack_http_request_duration_seconds_count{method="GET",status="200",view="healthz"}'
    ) in body
    # django-prometheus's request middleware is not used (config/metrics.py)
    assert "django_http_requests_total_by_method" not in body


@pytest.mark.django_db
def test_metrics_negotiates_openmetrics_when_the_scraper_asks():
    # when
    response = Client().get("/metrics", headers={"Accept": "application/openmetrics-text"})

    # then
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


@pytest.mark.django_db
def test_metrics_refuses_writes():
    assert Client().post("/metrics").status_code == 405


# --- access ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_metrics_public_a_bearer_token_is_required(settings):
    # given
    settings.METRICS_PUBLIC = False
    settings.METRICS_TOKEN = "scrape-token-0123456789"

    # when
    anonymous = Client().get("/metrics")
    token_auth = Client().get("/metrics", headers={"Authorization": "Token abc"})
    wrong = Client().get("/metrics", headers={"Authorization": "Bearer nope"})
    right = Client().get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})

    # then
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert token_auth.status_code == 401
    assert wrong.status_code == 403
    assert right.status_code == 200
    assert b"ordertrack_adjustments_total" in right.content


@pytest.mark.django_db
def test_without_metrics_public_and_without_a_token_nobody_gets_in(settings):
    settings.METRICS_PUBLIC = False
    settings.METRICS_TOKEN = ""

    assert Client().get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 403


def test_production_settings_require_the_token():
    # given: the production settings, with a token configured
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "production-test-" + "x" * 50,
        "ALLOWED_HOSTS": "testserver",
        "METRICS_TOKEN": "prod-token-0123456789",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/ordertrack",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        "EVENT_BUS_URL": "amqp://guest:guest@127.0.0.1:5672//",
    }
    script = (
        "import django; django.setup()\n"
        "from django.conf import settings; from django.test import Client\n"
        "c = Client()\n"
        "print(settings.METRICS_PUBLIC)\n"
        "print(c.get('/metrics', secure=True).status_code)\n"
        "print(c.get('/metrics', secure=True, headers={'Authorization': 'Bearer no'})"
        ".status_code)\n"
    )

    # when
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=BASE_DIR, capture_output=True, text=True
    )

    # then
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "401", "403"]


# --- domain metrics --------------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_an_order_through_the_api_counts_one_adjustment_per_line(
    api, product, other_product, django_capture_on_commit_callbacks
):
    # given
    before = value("ordertrack_adjustments_total", source="api", kind="order")
    body = {
        "lines": [{"sku": product.sku, "quantity": 3}, {"sku": other_product.sku, "quantity": 1}],
        "reason": "metrics",
    }

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/orders/", body, format="json")

    # then
    assert response.status_code == 201, response.content
    after = scrape()[("ordertrack_adjustments_total", (("kind", "order"), ("source", "api")))]
    assert after - before == 2
    assert value("ordertrack_adjustments_total", source="api", kind="order") == after


@pytest.mark.django_db(transaction=True)
def test_stock_moves_are_counted_and_a_rolled_back_command_counts_nothing(audit):
    # given
    product = ProductFactory(track_inventory=True)
    location_create(code="MET", name="Metrics")
    stock_before = value("ordertrack_adjustments_total", source="system", kind="stock")
    order_before = value("ordertrack_adjustments_total", source="system", kind="order")

    # when: a committed stock receipt, and an order whose transaction rolls back
    stock_receive(sku=product.sku, location="MET", quantity=5, audit=audit)
    with pytest.raises(RuntimeError), transaction.atomic():
        order_create(customer_id=None, reference="", lines={product.sku: 1}, audit=audit)
        raise RuntimeError("rolled back")

    # then
    assert value("ordertrack_adjustments_total", source="system", kind="stock") == (
        stock_before + 1
    )
    assert value("ordertrack_adjustments_total", source="system", kind="order") == order_before


@pytest.mark.django_db
def test_order_reads_count_cache_misses_and_hits(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 2})
    aggregate_cache._breaker.close()
    aggregate_cache.cache.delete(aggregate_cache._key("order", str(order.pk)))
    hits, misses = (
        value("ordertrack_cache_requests_total", result="hit"),
        value("ordertrack_cache_requests_total", result="miss"),
    )

    # when
    first = api.get(f"/api/v1/orders/{order.pk}/")
    second = api.get(f"/api/v1/orders/{order.pk}/")

    # then
    assert (first["X-Cache"], second["X-Cache"]) == ("miss", "hit")
    assert value("ordertrack_cache_requests_total", result="miss") == misses + 1
    assert value("ordertrack_cache_requests_total", result="hit") == hits + 1


def test_a_tripped_cache_counts_degraded_reads():
    # given: the circuit breaker is open
    before = value("ordertrack_cache_requests_total", result="degraded")
    aggregate_cache._breaker.open_until = float("inf")
    try:
        # when
        result = aggregate_cache.cache_read("order", "1")
    finally:
        aggregate_cache._breaker.close()

    # then
    assert result == (None, None, "degraded")
    assert value("ordertrack_cache_requests_total", result="degraded") == before + 1


@pytest.mark.django_db(transaction=True)
def test_relaying_counts_published_events_by_type_and_observes_their_lag(audit):
    # given: 2 orders, one of them adjusted twice
    product = ProductFactory()
    first = order_create(customer_id=None, reference="", lines={product.sku: 1}, audit=audit)
    order_create(customer_id=None, reference="", lines={product.sku: 1}, audit=audit)
    order_adjust(order_id=first.pk, deltas={product.sku: 1}, audit=audit)
    order_adjust(order_id=first.pk, deltas={product.sku: 1}, audit=audit)
    created = value("ordertrack_events_published_total", event_type="order.created")
    adjusted = value("ordertrack_events_published_total", event_type="order.quantity_adjusted")
    observed = value("ordertrack_relay_lag_seconds_count")
    lag_sum = value("ordertrack_relay_lag_seconds_sum")
    waves = value("ordertrack_relay_publish_seconds_count")

    # when: the real relay publishes to the real RabbitMQ
    result = outbox_relay()

    # then
    assert result.published == 4
    assert value("ordertrack_events_published_total", event_type="order.created") == created + 2
    assert (
        value("ordertrack_events_published_total", event_type="order.quantity_adjusted")
        == adjusted + 2
    )
    assert value("ordertrack_relay_lag_seconds_count") == observed + 4
    added = value("ordertrack_relay_lag_seconds_sum") - lag_sum
    assert 0 < added < 4 * 60
    assert value("ordertrack_relay_lag_seconds_bucket", le="+Inf") >= observed + 4
    # three waves: both orders' first events, then the first order's second, then its third
    assert value("ordertrack_relay_publish_seconds_count") == waves + 3


@pytest.mark.django_db(transaction=True)
def test_a_dead_lettered_event_is_counted(audit, settings):
    # given: RabbitMQ refuses (nacks) every order.created, and one attempt is the limit
    settings.RELAY_MAX_ATTEMPTS = 1
    refusing = EventCollector(
        binding="order.created", arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    try:
        order_create(customer_id=None, reference="", lines={ProductFactory().sku: 1}, audit=audit)
        before = value("ordertrack_events_dead_lettered_total")

        # when
        result = outbox_relay()
    finally:
        refusing.close()

    # then
    assert result.dead_lettered == 1
    assert value("ordertrack_events_dead_lettered_total") == before + 1
    assert scrape()[("ordertrack_outbox_dead_lettered", ())] == 1


@pytest.mark.django_db(transaction=True)
def test_the_scrape_reports_fresh_projection_lag_and_outbox_backlog(make_order, product):
    # given: one order of 1 line, neither projected nor relayed
    make_order(lines={product.sku: 3})

    # when
    before = scrape()
    projections_run()
    after = scrape()

    # then
    assert before[("ordertrack_projection_lag_events", (("projection", "order_snapshots"),))] == 1
    assert before[("ordertrack_projection_lag_seconds", (("projection", "order_snapshots"),))] >= 0
    assert before[("ordertrack_outbox_pending", ())] == 1
    assert before[("ordertrack_outbox_oldest_pending_seconds", ())] >= 0
    for name in ("order_snapshots", "sku_demand", "sku_daily", "stock_totals"):
        assert after[("ordertrack_projection_lag_events", (("projection", name),))] == 0
        assert after[("ordertrack_projection_lag_seconds", (("projection", name),))] == 0


# --- multiprocess mode -----------------------------------------------------------------------

_WRITER = """
import os, sys
from history import metrics
metrics.adjustments_recorded("api", "order", int(sys.argv[1]))
metrics.cache_request("hit")
metrics.PROJECTION_LAG_EVENTS.labels("mp_probe").set(float(sys.argv[2]))
print(os.getpid())
"""

_READER = """
import django
django.setup()
from django.test import Client
response = Client().get("/metrics")
assert response.status_code == 200, response.status_code
print(response.content.decode())
"""


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return (
        f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}"
    )


@pytest.mark.django_db
def test_multiprocess_mode_adds_up_every_process_and_drops_dead_workers_gauges(
    tmp_path, monkeypatch
):
    # given: processes sharing one PROMETHEUS_MULTIPROC_DIR, as gunicorn workers do
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": _database_url(),
        "ALLOWED_HOSTS": "testserver",
    }

    def run(script: str, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", script, *args],
            env=env,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    # when: two processes write, one after the other, and a third one serves /metrics
    first_pid = int(run(_WRITER, "3", "5"))
    second_pid = int(run(_WRITER, "4", "7"))
    scraped = parse(run(_READER))

    # then: counters add up; the gauge reports the most recent value
    assert first_pid != second_pid
    assert scraped[("ordertrack_adjustments_total", (("kind", "order"), ("source", "api")))] == 7
    assert scraped[("ordertrack_cache_requests_total", (("result", "hit"),))] == 2
    assert scraped[("ordertrack_projection_lag_events", (("projection", "mp_probe"),))] == 7
    assert ("ordertrack_projection_lag_events", (("projection", "order_snapshots"),)) in scraped

    # when: gunicorn reports the second worker gone
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gunicorn_config.child_exit(None, SimpleNamespace(pid=second_pid))
    scraped = parse(run(_READER))

    # then: its gauge is gone, its counts stay
    assert scraped[("ordertrack_projection_lag_events", (("projection", "mp_probe"),))] == 5
    assert scraped[("ordertrack_adjustments_total", (("kind", "order"), ("source", "api")))] == 7


def test_child_exit_without_multiprocess_mode_does_nothing(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    gunicorn_config.child_exit(None, SimpleNamespace(pid=12345))


def test_audit_source_enum_and_string_share_one_series():
    # given
    before = value("ordertrack_adjustments_total", source="admin", kind="order")

    # when
    metrics.adjustments_recorded(Source.ADMIN, "order", 2)
    metrics.adjustments_recorded("admin", "order", 1)

    # then
    assert value("ordertrack_adjustments_total", source="admin", kind="order") == before + 3


# --- per endpoint, readiness ----------------------------------------------------------------


@pytest.mark.django_db
def test_request_latency_is_observed_by_view_method_and_status(api, make_order):
    # given
    order = make_order()
    series = dict(view="order-detail", method="GET")
    before = {
        status: value("ordertrack_http_request_duration_seconds_count", **series, status=status)
        for status in ("200", "404")
    }

    # when: one found, two not found (an id no order has)
    assert api.get(f"/api/v1/orders/{order.pk}/").status_code == 200
    for _ in range(2):
        assert api.get(f"/api/v1/orders/{order.pk + 1000}/").status_code == 404

    # then: one series per status, in the scrape, with buckets to take quantiles from
    samples = scrape()
    count = "ordertrack_http_request_duration_seconds_count"
    labels = lambda status: tuple(sorted({**series, "status": status}.items()))  # noqa: E731
    assert samples[(count, labels("200"))] - before["200"] == 1
    assert samples[(count, labels("404"))] - before["404"] == 2
    inf = tuple(sorted({**series, "status": "200", "le": "+Inf"}.items()))
    assert samples[("ordertrack_http_request_duration_seconds_bucket", inf)] >= 1
    assert samples[("ordertrack_http_request_duration_seconds_sum", labels("200"))] > 0


@pytest.mark.django_db
def test_an_unresolved_path_is_one_series_not_one_per_path():
    # when
    for path in ("/nothing-here", "/nor-here"):
        Client().get(path)

    # then
    assert (
        value(
            "ordertrack_http_request_duration_seconds_count",
            view="<unnamed view>",
            method="GET",
            status="404",
        )
        >= 2
    )


@pytest.mark.django_db
def test_the_scrape_reports_readiness_and_each_check(settings):
    # when: ready
    samples = scrape()

    # then
    assert samples[("ordertrack_ready", ())] == 1
    for check in ("database", "cache", "broker", "partitions"):
        assert samples[("ordertrack_ready_check", (("check", check),))] == 1, check

    # when: the broker is unreachable (nothing listens on port 1)
    settings.EVENT_BUS_URL = "amqp://guest:guest@127.0.0.1:1//"
    samples = scrape()

    # then
    assert samples[("ordertrack_ready", ())] == 0
    assert samples[("ordertrack_ready_check", (("check", "broker"),))] == 0
    assert samples[("ordertrack_ready_check", (("check", "database"),))] == 1


@pytest.mark.django_db
def test_the_scrape_counts_the_low_stock_levels(audit):
    # given: two stock levels with a reorder point of 5, one of them above it
    location_create(code="LOWS", name="Low stock")
    low, fine = ProductFactory(), ProductFactory()
    for product, quantity in ((low, 3), (fine, 9)):
        stock_receive(sku=product.sku, location="LOWS", quantity=quantity, audit=audit)
        stock_set_thresholds(
            sku=product.sku, location="LOWS", reorder_point=5, safety_stock=0, audit=audit
        )
    before = scrape()[("ordertrack_stock_low", ())]

    # when: the fine one falls to the reorder point
    stock_issue(sku=fine.sku, location="LOWS", quantity=4, audit=audit)

    # then
    assert scrape()[("ordertrack_stock_low", ())] == before + 1
