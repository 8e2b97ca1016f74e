"""Liveness and readiness, against the real PostgreSQL, Redis and RabbitMQ of the test run."""

import pytest
from django.core.cache import cache
from django.test import Client

from config import health

pytestmark = pytest.mark.django_db


def test_healthz_is_200_without_login():
    # when
    response = Client().get("/healthz")

    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_touches_no_backing_service(monkeypatch):
    # given: every dependency is down
    def down():
        raise ConnectionError("down")

    for name in list(health.CHECKS):
        monkeypatch.setitem(health.CHECKS, name, down)

    # when
    response = Client().get("/healthz")

    # then
    assert response.status_code == 200


def test_readyz_is_200_with_database_cache_and_broker_ok():
    # when
    response = Client().get("/readyz")

    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "broker"}
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


@pytest.mark.parametrize("failing", ["database", "cache", "broker"])
def test_readyz_is_503_naming_the_failed_check(monkeypatch, failing):
    # given
    def broken():
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setitem(health.CHECKS, failing, broken)

    # when
    response = Client().get("/readyz")

    # then
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"][failing]["status"] == "down"
    assert body["checks"][failing]["error"] == "ConnectionRefusedError"
    others = set(body["checks"]) - {failing}
    assert {body["checks"][name]["status"] for name in others} == {"ok"}


def test_readyz_names_an_error_by_its_type_and_logs_the_message(monkeypatch, caplog):
    # given: a driver error that names hosts and roles
    def leaky():
        raise RuntimeError('connection to "db.internal:5432" failed for role "ordertrack_app"')

    monkeypatch.setitem(health.CHECKS, "broker", leaky)

    # when
    body = Client().get("/readyz").json()

    # then: the answer names the type only; the operator finds the message in the log
    assert body["checks"]["broker"]["error"] == "RuntimeError"
    assert "db.internal" not in str(body)
    assert "db.internal" in caplog.text


def test_without_the_metrics_token_readyz_says_only_ok_or_not(settings, monkeypatch):
    # given: production-like settings, and a broken broker
    settings.METRICS_PUBLIC, settings.METRICS_TOKEN = False, "s3cret-token"

    # when
    ready = Client().get("/readyz")
    detailed = Client().get("/readyz", headers={"Authorization": "Bearer s3cret-token"})
    monkeypatch.setitem(health.CHECKS, "broker", lambda: 1 / 0)
    down = Client().get("/readyz")

    # then
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
    assert set(detailed.json()) >= {"status", "checks", "outbox", "projections"}
    assert (down.status_code, down.json()) == (503, {"status": "unavailable"})


def test_readyz_checks_at_most_once_per_cache_period(settings, monkeypatch):
    # given: a check that counts its runs
    settings.READYZ_CACHE_SECONDS = 60
    monkeypatch.setattr(health, "_last", None)
    runs = []
    monkeypatch.setitem(health.CHECKS, "broker", lambda: runs.append(1))

    # when
    answers = [Client().get("/readyz").status_code for _ in range(5)]

    # then
    assert answers == [200] * 5
    assert len(runs) == 1


def test_cache_check_fails_when_the_cache_loses_writes(settings):
    # given: Redis behind a proxy that we cut; with IGNORE_EXCEPTIONS the cache then
    # silently drops every value, which is what the check must notice
    from django.test import override_settings

    from tests.proxy import TcpProxy

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
    # given: nothing listens on port 1
    settings.EVENT_BUS_URL = "amqp://guest:guest@127.0.0.1:1//"

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
