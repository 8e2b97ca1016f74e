import io

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection

from history.models import ConsumedEvent, OrderSnapshot
from history.relay import outbox_relay
from orders.services import order_adjust, order_cancel, order_create
from tests.factories import CustomerFactory, ProductFactory
from tests.proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)


def _run(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


def _orders(audit, n=3):
    product = ProductFactory()
    orders = []
    for _ in range(n):
        order = order_create(customer_id=None, reference="", lines={product.sku: 5}, audit=audit)
        order_adjust(order_id=order.pk, deltas={product.sku: 2}, audit=audit)
        orders.append(order)
    return product, orders


def test_verify_ledger_reports_zero_drift_and_exits_0(audit):
    # given
    _orders(audit)

    # when
    out = _run("verify_ledger")

    # then
    assert "OK" in out
    assert OrderSnapshot.objects.count() == 3


def test_verify_ledger_finds_state_and_snapshot_drift_and_exits_1(audit):
    # given: someone edits state behind the services' back
    product, (first, second, _) = _orders(audit)
    call_command("rebuild_projections", stdout=io.StringIO())
    with connection.cursor() as cursor:
        cursor.execute("UPDATE orders_orderline SET quantity = 99 WHERE order_id = %s", [first.pk])
        cursor.execute(
            "UPDATE history_ordersnapshot SET total_quantity = 1 WHERE order_id = %s", [second.pk]
        )

    # when
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("verify_ledger", stdout=out)

    # then
    assert exited.value.code == 1
    report = out.getvalue()
    assert f"order {first.pk}: state: lines are {{'{product.sku}': 99}}" in report
    assert f"order {second.pk}: snapshot: total is 1" in report
    assert "DRIFT: 2 problem(s) in 2 order(s)" in report


def test_rebuild_projections_restores_a_damaged_snapshot(audit):
    # given
    _, (first, *_) = _orders(audit)
    _run("verify_ledger")
    OrderSnapshot.objects.filter(order=first).update(lines={}, total_quantity=0)

    # when
    out = _run("rebuild_projections")

    # then
    assert "order_snapshots: rebuilt from 6 ledger rows" in out
    assert OrderSnapshot.objects.get(order=first).total_quantity == 7
    with pytest.raises(CommandError):
        _run("rebuild_projections", "nope")


def test_relay_outbox_once_exits_non_zero_when_the_broker_is_unreachable(audit, settings):
    # given
    _orders(audit, n=1)
    proxy = TcpProxy("127.0.0.1", 5672)
    proxy.cut()
    settings.EVENT_BUS_URL = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"
    try:
        # when / then
        with pytest.raises(CommandError, match="Could not reach the broker"):
            _run("relay_outbox", "--once")
    finally:
        proxy.close()


def test_relay_outbox_once_publishes_the_backlog(audit):
    _orders(audit, n=2)
    assert "published=4" in _run("relay_outbox", "--once")


def test_consume_events_prints_acknowledges_and_deduplicates(audit, consumer_queue):
    # given: a queue bound before the events are relayed
    queue = consumer_queue
    _run("consume_events", "--queue", queue, "--idle-timeout", "0.2")
    _orders(audit, n=2)
    outbox_relay()
    outbox_relay()  # nothing left: no duplicates from the relay itself

    # when
    out = _run("consume_events", "--queue", queue, "--idle-timeout", "0.5")

    # then
    assert out.count("order.created") == 2
    assert out.count("order.quantity_adjusted") == 2
    assert "read 4 message(s)" in out
    assert ConsumedEvent.objects.filter(consumer=queue).count() == 4


def test_the_cancellation_consumer_sends_one_mail_per_cancelled_order(
    audit, settings, consumer_queue
):
    # given
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    queue = consumer_queue
    _run("consume_events", "--queue", queue, "--binding", "order.*", "--idle-timeout", "0.2")
    customer = CustomerFactory(email="buyer@example.com")
    product = ProductFactory()
    order = order_create(
        customer_id=customer.pk, reference="PO-9", lines={product.sku: 4}, audit=audit
    )
    order_cancel(order_id=order.pk, audit=audit)
    outbox_relay()

    # when: the consumer runs, and the same event is delivered a second time
    _run(
        "consume_events", "--queue", queue, "--handler", "notify-cancelled", "--idle-timeout", "0.5"
    )
    from history.consumers import event_handle_once
    from orders.consumers import notify_order_cancelled

    event = {"id": str(ConsumedEvent.objects.filter(consumer=queue).last().event_id)}
    assert not event_handle_once(consumer=queue, event=event, handler=notify_order_cancelled)

    # then
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["buyer@example.com"]
    assert mail.outbox[0].subject == f"Order #{order.pk} was cancelled"
    assert "Units released: 4" in mail.outbox[0].body


def test_verify_ledger_reports_zero_drift_after_the_demo_data():
    # given
    _run("seed_demo", "--admin-password", "demo-pass-123")

    # when
    out = _run("verify_ledger")

    # then
    assert "OK: every order matches its ledger" in out


def test_relay_outbox_stops_cleanly_on_sigterm(audit):
    # given: the relay running in the foreground as operators run it
    import signal
    import subprocess
    import sys

    from django.conf import settings as django_settings

    env = {
        **__import__("os").environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/"
        + connection.settings_dict["NAME"],
    }
    child = subprocess.Popen(
        [sys.executable, "manage.py", "relay_outbox", "--interval", "0.05"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().startswith("Relaying the outbox")  # its signal handlers are set

    # when
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=20)

    # then
    assert child.returncode == 0
    assert "Traceback" not in stderr
