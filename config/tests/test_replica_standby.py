"""The read replica against a real hot standby (config/replica.py, config/api/replica.py):
a primary and a streaming standby of their own (tests/standby.py), the application on them
under gunicorn with the production settings (two workers, so what a user wrote must reach
the other worker through Redis), driven over HTTP.

One scenario in one test: building the servers is what costs (about 10 s), and pytest-xdist
would build them again for every worker that got a test of this module."""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django_redis import get_redis_connection

from config.replica import lsn_parse
from tests.eventually import eventually
from tests.ports import free_port
from tests.proxy import TcpProxy
from tests.standby import StandbyPair

BASE_DIR = Path(__file__).resolve().parent.parent.parent
MAX_LAG_SECONDS = 4
CHECK_INTERVAL_SECONDS = 1.0
# Run in the application's environment: migrate the primary, issue two integrators' tokens.
PREPARE = """
import io, json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
tokens = {}
for name in ("writer", "reader"):
    out = io.StringIO()
    call_command("issue_token", name, role="integrator", stdout=out)
    tokens[name] = out.getvalue().split()[-1]
print(json.dumps(tokens))
"""


@dataclass
class Client:
    base: str
    session: requests.Session

    def get(self, path: str, **headers) -> requests.Response:
        return self.session.get(self.base + path, headers=headers, timeout=30)

    def send(self, method: str, path: str, body: dict, **headers) -> requests.Response:
        return self.session.request(
            method, self.base + path, json=body, headers=headers, timeout=30
        )


@dataclass
class App:
    url: str
    tokens: dict[str, str]

    def client(self, name: str) -> Client:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {self.tokens[name]}"
        return Client(f"{self.url}/api/v1", session)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=30)


@pytest.fixture(scope="module")
def deployment():
    """gunicorn on a primary and its standby (DATABASE_URL; DATABASE_REPLICA_URL through a
    TCP proxy, to cut), with this run's Redis under a key prefix of its own; everything
    stopped and deleted afterwards. The migrations, gunicorn's start and the standby's base
    backup run side by side."""
    work = Path(tempfile.mkdtemp(prefix="ordertrack-replica-app-"))
    prefix = f"ordertrack-test-replica-{uuid.uuid4().hex[:12]}"
    port = free_port()
    pair = StandbyPair()
    prepare = server = proxy = None
    try:
        pair.start_primary()
        proxy = TcpProxy("127.0.0.1", pair.standby.port)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DATABASE_URL": pair.url(pair.primary),
            "DATABASE_REPLICA_URL": f"postgres://postgres@127.0.0.1:{proxy.port}/ordertrack",
            "DATABASE_RUNTIME_ROLE": "",
            "REPLICA_MAX_LAG_SECONDS": str(MAX_LAG_SECONDS),
            "REPLICA_CHECK_INTERVAL_SECONDS": str(CHECK_INTERVAL_SECONDS),
            "REDIS_URL": settings.REDIS_URL,
            "CACHE_KEY_PREFIX": prefix,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "EVENT_BUS_URL": settings.EVENT_BUS_URL,
            "EVENT_EXCHANGE": f"{prefix}.events",
            "RELAY_KICK_ON_COMMIT": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "METRICS_PUBLIC": "true",
            "READYZ_CACHE_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "2",
            "GUNICORN_THREADS": "2",
        }
        prepare = subprocess.Popen(
            [sys.executable, "-c", PREPARE],
            env=env,
            cwd=BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        log = (work / "gunicorn.log").open("w")
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
            env={**env, "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")},
            cwd=BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        pair.start_standby()
        out, err = prepare.communicate(timeout=300)
        assert prepare.returncode == 0, err
        app = App(f"http://127.0.0.1:{port}", json.loads(out.splitlines()[-1]))
        up = eventually(
            lambda: _answers(app, server), lambda up: up is not False, what="gunicorn", seconds=60
        )
        if not up:
            pytest.fail(f"gunicorn exited:\n{(work / 'gunicorn.log').read_text()[-3000:]}")
        pair.wait_caught_up()
        yield pair, app, proxy
    finally:
        for process in (prepare, server):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)  # gunicorn: quick shutdown
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if proxy is not None:
            proxy.close()
        pair.close()
        redis = get_redis_connection("default")
        for key in redis.scan_iter(f"{prefix}:*"):
            redis.delete(key)
        shutil.rmtree(work, ignore_errors=True)


def _answers(app: App, server: subprocess.Popen) -> bool | None:
    """Whether gunicorn answers /healthz; None once it has exited."""
    if server.poll() is not None:
        return None
    try:
        return app.get("/healthz").status_code == 200
    except requests.ConnectionError:
        return False


def _from(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    return response.headers["X-Read-From"]


def _quantity(response: requests.Response) -> int:
    return response.json()["lines"][0]["quantity"]


def _metric(app: App, name: str) -> float:
    body = app.get("/metrics").text
    match = re.search(rf'^{name}{{alias="replica"}} (\S+)$', body, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match[1])


def test_reads_use_the_replica_and_every_client_reads_its_own_writes(deployment):
    pair, app, replica_link = deployment
    writer, reader = app.client("writer"), app.client("reader")

    # given: an order, written on the primary
    product = {"sku": "RR-MUG", "name": "Replica mug", "track_inventory": False}
    assert writer.send("POST", "/products/", product).status_code == 201
    lines = [{"sku": "RR-MUG", "quantity": 100}]
    created = writer.send("POST", "/orders/", {"reference": "RR-1", "lines": lines})
    assert created.status_code == 201, created.text
    order, created_lsn = created.json()["id"], created.headers["X-Commit-LSN"]
    path = f"/orders/{order}/"

    # when: another client presents the order's commit LSN, until the replica has replayed it
    first = eventually(
        lambda: reader.get(path, **{"X-Min-LSN": created_lsn}),
        lambda response: _from(response) == "replica",
        what="the replica to replay the order",
    )

    # then: the replica serves it, and every read-only endpoint reads there
    assert _quantity(first) == 100
    as_of = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for read in (
        "/orders/?sku=RR-MUG",
        f"{path}history/",
        f"{path}?as_of={as_of}",
        f"/adjustments/?order={order}&format=csv",
        "/stock/",
        "/demand/",
    ):
        assert _from(reader.get(read, **{"X-Min-LSN": created_lsn})) == "replica", read
    csv = reader.get(f"/adjustments/?order={order}&format=csv").text.splitlines()
    assert len(csv) == 2 and ",RR-MUG,100," in csv[1]
    assert reader.get(path, **{"X-Min-LSN": "yesterday"}).status_code == 400

    # given: the standby receives WAL but replays none of it
    pair.replay_pause()
    try:
        # when: the writer changes the quantity
        patch = {"lines": [{"sku": "RR-MUG", "quantity": 120}], "reason": "20 more"}
        patched = writer.send("PATCH", path, patch, **{"If-Match": '"1"'})
        assert patched.status_code == 200, patched.text
        patched_lsn = patched.headers["X-Commit-LSN"]

        # then: a client that knows nothing of the write reads the replica's older state...
        stale = reader.get(path)
        stale_history = reader.get(f"{path}history/")
        stale_csv = reader.get(f"/adjustments/?order={order}&format=csv")  # read as it streams
        # ...the writer (same token, no header) and a client presenting the LSN read the new
        own = writer.get(path)
        told = reader.get(path, **{"X-Min-LSN": patched_lsn})
        own_history = writer.get(f"{path}history/")
    finally:
        pair.replay_resume()
    assert lsn_parse(patched_lsn) > lsn_parse(created_lsn)
    assert (_from(stale), _quantity(stale)) == ("replica", 100)
    assert (_from(stale_history), len(stale_history.json()["results"])) == ("replica", 1)
    assert (_from(stale_csv), len(stale_csv.text.splitlines())) == ("replica", 2)
    assert (_from(own), _quantity(own)) == ("primary", 120)
    assert (_from(told), _quantity(told)) == ("primary", 120)
    assert (_from(own_history), len(own_history.json()["results"])) == ("primary", 2)

    # and once the standby has replayed the write, the writer reads the replica again
    back = eventually(
        lambda: writer.get(f"{path}history/"),
        lambda response: _from(response) == "replica",
        what="the writer's reads to return to the replica",
    )
    assert len(back.json()["results"]) == 2

    # given: replay paused while the primary writes on
    pair.replay_pause()
    try:
        adjust = {"sku": "RR-MUG", "delta": 1, "reason": "one more"}
        assert writer.send("POST", f"{path}adjust/", adjust).status_code == 200

        # when: the replica falls more than REPLICA_MAX_LAG_SECONDS behind
        lagging = eventually(
            lambda: reader.get(f"{path}history/"),
            lambda response: _from(response) == "primary",
            what="reads to leave the lagging replica",
            seconds=MAX_LAG_SECONDS + 20,
        )
        # (each worker judges by its own checks: the scrape may reach the one that was later)
        lag_seconds = eventually(
            lambda: _metric(app, "ordertrack_replica_lag_seconds"),
            lambda seconds: seconds > MAX_LAG_SECONDS,
            what="the lag gauge to pass REPLICA_MAX_LAG_SECONDS",
        )
        lag_bytes = _metric(app, "ordertrack_replica_lag_bytes")
        ready = eventually(
            lambda: app.get("/readyz"),
            lambda response: response.json().get("replica", {}).get("status") == "degraded",
            what="/readyz to report the lagging replica",
        )
    finally:
        pair.replay_resume()

    # then: every client reads the primary, and /readyz and /metrics say why, still ready
    assert len(lagging.json()["results"]) == 3
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    assert ready.json()["replica"]["status"] == "degraded"
    assert ready.json()["replica"]["state"] == "lagging"
    assert ready.json()["replica"]["lag_bytes"] > 0
    assert lag_seconds > MAX_LAG_SECONDS and lag_bytes > 0
    lagged = 'ordertrack_replica_reads_total{database="primary",reason="lagging"}'
    assert lagged in app.get("/metrics").text
    eventually(
        lambda: reader.get(f"{path}history/"),
        lambda response: _from(response) == "replica",
        what="reads to return to the replica once it caught up",
    )

    # given: the worker that answers the reader (its keep-alive connection) has just checked
    # the replica and found it well
    time.sleep(CHECK_INTERVAL_SECONDS)
    assert _from(reader.get(f"{path}history/")) == "replica"

    # when: the network to the standby is cut
    replica_link.cut()

    # then: reads fall back to the primary at once (the read the replica fails is run again
    # on the primary, then no read goes there), and /readyz reports it, still ready
    for _ in range(3):
        assert _from(reader.get(f"{path}history/")) == "primary"
    down = app.get("/readyz")
    assert down.status_code == 200
    assert down.json()["replica"]["status"] == "degraded"
    assert down.json()["replica"]["state"] == "down"
    assert _metric(app, "ordertrack_replica_healthy") == 0
    reads = app.get("/metrics").text
    assert 'ordertrack_replica_reads_total{database="replica",reason="ok"}' in reads
    for reason in ("behind_client", "replica_failed"):
        assert f'ordertrack_replica_reads_total{{database="primary",reason="{reason}"}}' in reads
