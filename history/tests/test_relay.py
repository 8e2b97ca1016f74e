import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from history.models import OutboxEvent
from history.relay import Publisher, outbox_relay, outbox_relay_batch
from history.services import outbox_events_retry
from orders.services import order_adjust, order_cancel, order_create
from tests.broker import EventCollector
from tests.factories import ProductFactory
from tests.proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def collector():
    collector = EventCollector()
    yield collector
    collector.close()


@pytest.fixture
def fast_backoff(settings):
    settings.RELAY_BACKOFF_BASE_SECONDS = 0.001
    settings.RELAY_BACKOFF_MAX_SECONDS = 0.001


def _make_history(audit, *, orders: int, adjustments: int) -> list[int]:
    product = ProductFactory()
    ids = []
    for _ in range(orders):
        order = order_create(customer_id=None, reference="", lines={product.sku: 10}, audit=audit)
        for _ in range(adjustments):
            order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=audit)
        ids.append(order.pk)
    return ids


def _assert_versions_in_order(events: list[dict]) -> None:
    seen: dict[str, list[int]] = defaultdict(list)
    for event in events:
        seen[event["subject"]].append(event["data"]["aggregate_version"])
    for subject, versions in seen.items():
        assert versions == sorted(versions), f"order {subject} arrived as {versions}"


def _relay_until_done(publisher=None, rounds: int = 50) -> None:
    for _ in range(rounds):
        result = outbox_relay(publisher=publisher)
        if not OutboxEvent.objects.filter(published_at__isnull=True).exists():
            return
        if result.published == 0:
            time.sleep(0.01)


def test_every_event_is_published_once_in_version_order_as_a_cloudevent(audit, collector):
    # given
    _make_history(audit, orders=5, adjustments=4)
    expected = {str(e) for e in OutboxEvent.objects.values_list("event_id", flat=True)}

    # when
    result = outbox_relay()

    # then
    events = collector.collect(expected=len(expected))
    assert result.published == len(expected) == 25
    assert Counter(e["id"] for e in events) == Counter(expected)
    _assert_versions_in_order(events)
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    adjusted = next(e for e in events if e["type"] == "order.quantity_adjusted")
    assert adjusted["specversion"] == "1.0"
    assert adjusted["_routing_key"] == "order.quantity_adjusted"
    assert adjusted["source"] == f"{settings.EVENT_SOURCE}/orders"
    assert adjusted["datacontenttype"] == "application/json"
    assert adjusted["time"]
    assert adjusted["data"]["changes"][0]["delta"] == 1
    assert adjusted["_properties"]["delivery_mode"] == 2
    assert outbox_relay().published == 0


def test_broker_outage_keeps_the_backlog_and_delivers_it_on_recovery(
    audit, collector, fast_backoff
):
    # given: the relay talks to RabbitMQ through a proxy that we cut
    proxy = TcpProxy("127.0.0.1", 5672)
    publisher = Publisher(url=f"amqp://guest:guest@127.0.0.1:{proxy.port}//")
    try:
        _make_history(audit, orders=3, adjustments=2)
        proxy.cut()

        # when: the broker is unreachable
        result = outbox_relay(publisher=publisher)

        # then: nothing is lost, the failure is recorded, and retries are scheduled
        assert result.published == 0
        assert result.errors
        failed = OutboxEvent.objects.filter(attempts=1)
        assert failed.exists()
        assert all(e.last_error and e.next_attempt_at for e in failed)
        assert not OutboxEvent.objects.filter(published_at__isnull=False).exists()

        # when: more events pile up, and the broker comes back
        _make_history(audit, orders=2, adjustments=3)
        proxy.restore()
        time.sleep(0.01)
        _relay_until_done(publisher)

        # then: all of them arrive exactly once, in order per order
        expected = {str(e) for e in OutboxEvent.objects.values_list("event_id", flat=True)}
        events = collector.collect(expected=len(expected))
        assert Counter(e["id"] for e in events) == Counter(expected)
        _assert_versions_in_order(events)
        # and the retried ones are settled: published, no retry pending, attempts kept
        retried = OutboxEvent.objects.filter(attempts=1)
        assert retried.exists()
        assert all(e.published_at and e.next_attempt_at is None for e in retried)
    finally:
        publisher.close()
        proxy.close()


def test_a_refused_event_is_dead_lettered_and_holds_back_its_order_only(
    audit, collector, settings, fast_backoff
):
    # given: a queue that makes RabbitMQ refuse (nack) every quantity adjustment
    settings.RELAY_MAX_ATTEMPTS = 2
    refusing = EventCollector(
        binding="order.quantity_adjusted",
        arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
    )
    product = ProductFactory()
    stuck = order_create(customer_id=None, reference="", lines={product.sku: 1}, audit=audit)
    order_adjust(order_id=stuck.pk, deltas={product.sku: 1}, audit=audit)
    order_cancel(order_id=stuck.pk, audit=audit)
    other = order_create(customer_id=None, reference="", lines={product.sku: 1}, audit=audit)

    # when
    for _ in range(3):
        outbox_relay()
        time.sleep(0.01)

    # then: the refused v2 is dead after 2 attempts, v3 waits behind it, others flow
    v1, v2, v3 = OutboxEvent.objects.filter(aggregate_id=str(stuck.pk)).order_by("id")
    assert v1.published_at is not None
    assert v2.dead_lettered_at is not None and v2.attempts == 2
    assert "refused" in v2.last_error
    assert v3.published_at is None and v3.attempts == 0
    assert OutboxEvent.objects.get(aggregate_id=str(other.pk)).published_at is not None

    # when: the cause is fixed and an operator retries the dead letter
    refusing.close()
    assert outbox_events_retry(event_ids=[v2.pk]) == 1
    _relay_until_done()

    # then: the order's events arrive in order. A nack means "maybe not delivered": RabbitMQ
    # may still have routed the refused copies to other queues, so v2 can arrive more than
    # once (consumers deduplicate by id), but never after v3.
    events = collector.collect()
    stuck_versions = [
        e["data"]["aggregate_version"] for e in events if e["subject"] == str(stuck.pk)
    ]
    assert stuck_versions == sorted(stuck_versions)
    assert set(stuck_versions) == {1, 2, 3}
    assert stuck_versions.count(3) == 1
    assert len({e["id"] for e in events}) == 4


def test_two_relays_side_by_side_publish_each_event_once_and_in_order(audit, collector):
    # given
    _make_history(audit, orders=40, adjustments=5)
    total = OutboxEvent.objects.count()
    errors: list[BaseException] = []

    def relay():
        publisher = Publisher()
        try:
            for _ in range(200):
                outbox_relay_batch(publisher=publisher, batch_size=25)
                if not OutboxEvent.objects.filter(published_at__isnull=True).exists():
                    break
        except BaseException as exc:  # noqa: BLE001 - asserted empty below
            errors.append(exc)
        finally:
            publisher.close()
            connection.close()

    # when
    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    assert errors == []
    events = collector.collect(expected=total)
    assert len(events) == total == 240
    assert len({e["id"] for e in events}) == total
    _assert_versions_in_order(events)


def test_a_relay_killed_mid_batch_loses_nothing(audit, collector):
    # given: a relay process that publishes a batch and then hangs before committing
    _make_history(audit, orders=4, adjustments=2)
    expected = {str(e) for e in OutboxEvent.objects.values_list("event_id", flat=True)}
    script = (
        "import django, time; django.setup();"
        "from django.db.models.query import QuerySet;"
        "QuerySet.update = lambda *a, **k: time.sleep(600);"
        "from history.relay import outbox_relay; outbox_relay()"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/"
        + connection.settings_dict["NAME"],
    }
    child = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=settings.BASE_DIR)
    try:
        # its first wave (the first event of each of the 4 orders) reaches the broker
        published_by_child = list(collector.collect(expected=4, timeout=20))
        assert len(published_by_child) == 4
    finally:
        # when: it is killed mid-batch
        child.send_signal(signal.SIGKILL)
        child.wait()

    # then: its rows were never marked published, so the next relay sends them again
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == len(expected)
    _relay_until_done()
    events = collector.collect(expected=len(expected) + 4)
    twice = {e["id"] for e in published_by_child}
    assert Counter(e["id"] for e in events) == Counter(
        {i: 2 if i in twice else 1 for i in expected}
    )
    _assert_versions_in_order(events[4:])
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_retry_resets_only_dead_letters(audit):
    # given
    product = ProductFactory()
    order_create(customer_id=None, reference="", lines={product.sku: 1}, audit=audit)
    event = OutboxEvent.objects.get()
    OutboxEvent.objects.filter(pk=event.pk).update(
        attempts=9, dead_lettered_at=timezone.now(), last_error="nack"
    )

    # when
    retried = outbox_events_retry(event_ids=[event.pk, event.pk + 100])

    # then
    event.refresh_from_db()
    assert retried == 1
    assert (event.attempts, event.dead_lettered_at, event.next_attempt_at) == (0, None, None)


def test_a_commit_kicks_the_relay_so_the_event_goes_out_at_once(audit, collector, settings):
    # given: kicks enabled, and the worker simulated by running tasks eagerly
    from config.celery_app import app

    settings.RELAY_KICK_ON_COMMIT = True
    app.conf.task_always_eager = True
    import history.relay

    history.relay._last_kick = 0.0
    try:
        # when
        product = ProductFactory()
        order = order_create(customer_id=None, reference="", lines={product.sku: 1}, audit=audit)

        # then: published by the kick, without any beat or explicit relay call
        assert OutboxEvent.objects.get(aggregate_id=str(order.pk)).published_at is not None
        assert [e["subject"] for e in collector.collect(expected=1)] == [str(order.pk)]
    finally:
        app.conf.task_always_eager = False


def test_every_process_knows_the_relay_task_that_commits_kick():
    # given: a fresh process, as manage.py, runserver or gunicorn start one (not a worker)
    code = (
        "import django; django.setup()\n"
        "from celery import current_app\n"
        "from history.relay import RELAY_TASK\n"
        "print(RELAY_TASK in current_app.tasks)"
    )

    # when
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    # then: a kick finds the task (it failed with NotRegistered outside workers)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_a_wave_in_one_write_carries_bodies_larger_than_a_frame_intact(
    audit, collector, fast_backoff
):
    # given: orders' events, and one event whose body spans several AMQP frames
    # (RabbitMQ's frame_max is 128 KiB), all in the first wave; the relay writes a wave's
    # frames into one buffer and sends it in one socket write
    _make_history(audit, orders=3, adjustments=1)
    big = OutboxEvent.objects.create(
        aggregate_type="order",
        aggregate_id="big",
        aggregate_version=1,
        event_type="order.created",
        payload={"aggregate_version": 1, "notes": ["x" * 1000 + str(n) for n in range(400)]},
        created_at=timezone.now(),
    )
    expected = {str(e) for e in OutboxEvent.objects.values_list("event_id", flat=True)}
    publisher = Publisher()

    # when: a batch, then a broken connection and another batch on a new one
    first = outbox_relay(publisher=publisher)
    publisher.connection.connection.transport.sock.close()
    _make_history(audit, orders=1, adjustments=0)
    second = outbox_relay(publisher=publisher)
    _relay_until_done(publisher)
    publisher.close()

    # then: every event arrived once and whole, the large one byte for byte
    events = collector.collect(expected=len(expected) + 1)
    assert first.published == len(expected) == 7
    assert second.published == 0 and second.errors  # the write on the broken connection
    assert len(events) == 8 and len({e["id"] for e in events}) == 8
    (received,) = [e for e in events if e["id"] == str(big.event_id)]
    assert received["data"] == big.payload
    assert received["_properties"]["message_id"] == str(big.event_id)
    _assert_versions_in_order(events)
