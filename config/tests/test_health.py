"""Liveness and readiness, against the real PostgreSQL, Redis and RabbitMQ of the test run."""

import pytest
from django.core.cache import cache
from django.db import connections
from django.test import Client, override_settings

from config import health
from tests.proxy import TcpProxy

pytestmark = pytest.mark.django_db


UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens on port 1


@pytest.fixture
def database_outage():
    """The default database connection goes through a TCP proxy (the fixture); `.cut()` it."""
    database = connections["default"]
    original = {key: database.settings_dict[key] for key in ("HOST", "PORT")}
    proxy = TcpProxy(original["HOST"] or "127.0.0.1", int(original["PORT"] or 5432))
    database.close()
    database.settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))
    yield proxy
    proxy.close()
    database.close()
    database.settings_dict.update(original)


def test_healthz_is_200_without_login():
    # when
    response = Client().get("/healthz")

    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_healthz_touches_no_backing_service(settings, database_outage):
    # given: the database cut and the broker unreachable
    database_outage.cut()
    connections["default"].close()
    settings.EVENT_BUS_URL = UNREACHABLE_BROKER

    # when
    response = Client().get("/healthz")

    # then
    assert response.status_code == 200
    assert Client().get("/readyz").status_code == 503


def test_readyz_is_200_with_database_cache_and_broker_ok():
    # when
    response = Client().get("/readyz")

    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "broker", "partitions"}
    for name, check in body["checks"].items():
        assert check["status"] == "ok", (name, check)
        assert isinstance(check["ms"], int | float)
        assert check["ms"] >= 0
        assert "error" not in check


def test_readyz_cache_probe_cleans_up_after_itself():
    # when
    Client().get("/readyz")

    # then
    assert not [key for key in cache.keys("readyz:*")]


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_when_the_database_is_unreachable(database_outage, caplog):
    # given: ready, then the database's connection is cut
    assert Client().get("/readyz").status_code == 200
    database_outage.cut()
    connections["default"].close()

    # when
    response = Client().get("/readyz")

    # then: named by its type only (the driver's message names hosts and ports: the log)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    database = body["checks"]["database"]
    assert (database["status"], database["error"]) == ("down", "OperationalError")
    assert f"port {database_outage.port}" not in response.content.decode()
    assert f"port {database_outage.port}" in caplog.text
    assert {body["checks"][name]["status"] for name in ("cache", "broker")} == {"ok"}


def test_without_the_metrics_token_readyz_says_only_ok_or_not(settings):
    # given: production-like settings
    settings.METRICS_PUBLIC, settings.METRICS_TOKEN = False, "s3cret-token"

    # when
    ready = Client().get("/readyz")
    detailed = Client().get("/readyz", headers={"Authorization": "Bearer s3cret-token"})
    settings.EVENT_BUS_URL = UNREACHABLE_BROKER
    down = Client().get("/readyz")
    down_detailed = Client().get("/readyz", headers={"Authorization": "Bearer s3cret-token"})

    # then
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
    assert set(detailed.json()) >= {"status", "checks", "outbox", "projections"}
    assert (down.status_code, down.json()) == (503, {"status": "unavailable"})
    assert down_detailed.json()["checks"]["broker"]["status"] == "down"


def test_readyz_checks_at_most_once_per_cache_period(settings, monkeypatch):
    # given: a fresh answer, kept for a minute
    settings.READYZ_CACHE_SECONDS = 60
    monkeypatch.setattr(health, "_last", None)
    assert Client().get("/readyz").status_code == 200

    # when: the broker becomes unreachable within the minute
    settings.EVENT_BUS_URL = UNREACHABLE_BROKER
    answers = [Client().get("/readyz").status_code for _ in range(5)]
    monkeypatch.setattr(health, "_last", None)  # the minute is over
    after = Client().get("/readyz").status_code

    # then: probes within the period never reached the broker; the next check does
    assert answers == [200] * 5
    assert after == 503


def test_cache_check_fails_when_the_cache_loses_writes(settings):
    # given: Redis behind a proxy that we cut; with IGNORE_EXCEPTIONS the cache then
    # silently drops every value, which is what the check must notice
    proxy = TcpProxy("127.0.0.1", 6379)
    redis_cache = {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{proxy.port}/0"}
    try:
        with override_settings(CACHES={"default": redis_cache}):
            proxy.cut()

            # when
            response = Client().get("/readyz")

        # then
        assert response.status_code == 503
        assert response.json()["checks"]["cache"]["status"] == "down"
    finally:
        proxy.close()


def test_broker_check_fails_for_an_unreachable_broker(settings):
    # given
    settings.EVENT_BUS_URL = UNREACHABLE_BROKER

    # when
    response = Client().get("/readyz")

    # then
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["status"] == "down"
    assert response.json()["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_readyz_reports_the_outbox_backlog_and_projection_lag(client, make_order, product):
    # given: one order written, nothing relayed or projected yet
    from history.projector import projections_run

    make_order(lines={product.sku: 3})

    # when
    before = client.get("/readyz").json()
    projections_run()
    after = client.get("/readyz").json()

    # then
    assert before["outbox"]["pending"] == 1
    assert before["outbox"]["dead_lettered"] == 0
    assert before["outbox"]["seconds_behind"] >= 0
    assert before["projections"]["order_snapshots"]["events_behind"] == 1
    assert after["projections"]["order_snapshots"] == {"events_behind": 0, "seconds_behind": 0.0}
