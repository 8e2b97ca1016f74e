"""Many processes, one product (issue 13, part 4): two gunicorn servers, two relays
(`manage.py relay_outbox`), two Celery workers (which run the relay task too) and one Celery
beat, all with the production settings, against this test's database (as the runtime
role), Redis (a key prefix of its own) and RabbitMQ (the run's own event exchange, and a
Celery queue of its own so that no other run's tasks are taken). Threads write through
both servers at once; then every event received is checked against the outbox, and the
projections the workers built side by side against a rebuild from the ledger.

One of the two relays stalls in the middle of a batch (its first wave published and
confirmed, the rows not yet marked, their locks held: a relay frozen by a long GC pause or
cut off from the database) and is killed with SIGKILL while the writes go on. What the
README ("Guarantees") promises, and so what is asserted: every event is published at least
once; the only duplicates are the events the killed relay had published (each exactly
twice); and once ids already seen are dropped, as a consumer does, each aggregate's events
arrive in outbox (= version) order, although the other relays carried on meanwhile. One
scenario in one test: starting the processes is what costs."""

import contextlib
import io
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django_redis import get_redis_connection
from kombu import Connection

from history.audit import Audit
from history.models import (
    DailyChangeCounts,
    OrderSnapshot,
    OutboxEvent,
    ProjectionCheckpoint,
    SkuDailyAdjustments,
    SkuDemand,
    SkuStockTotals,
    Source,
)
from history.projector import projection_lag, projections_rebuild
from inventory.services import location_create, product_create, stock_receive
from orders.services import order_create
from tests.broker import EventCollector
from tests.eventually import eventually
from tests.ports import free_port

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(settings.BASE_DIR)
ORDERS = 12
WRITERS = 6
WRITE_SECONDS = 6.0
TRACKED, UNTRACKED, PLACES = "MP-TEA", "MP-MUG", ("MP-W1", "MP-W2")


# `manage.py relay_outbox` whose relay, once the broker has confirmed its first wave, says
# which events it published and stalls before marking them, holding its batch's row locks.
STALLING_RELAY = """
import time
import django
django.setup()
from django.core.management import call_command
from history.relay import Publisher

publish_wave = Publisher.publish_wave

def publish_then_stall(self, events):
    outcome = publish_wave(self, events)
    confirmed = [str(event.event_id) for event in events if outcome[event.pk] is None]
    print("stalled after publishing", *confirmed, flush=True)
    time.sleep(3600)

Publisher.publish_wave = publish_then_stall
call_command("relay_outbox", interval=0.05)
"""


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class Deployment:
    """The processes of one deployment; each in a session of its own, so that stopping it
    stops its gunicorn workers or Celery pool too."""

    env: dict
    work: Path
    children: list[Child] = field(default_factory=list)
    servers: list[str] = field(default_factory=list)

    def start(self, name: str, argv: list[str], **env) -> Child:
        log = self.work / f"{name}.log"
        process = subprocess.Popen(
            argv,
            cwd=BASE_DIR,
            env={**self.env, **env},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def wait_for(self, child: Child, ready: Callable[[], bool], seconds: float = 45.0) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if child.process.poll() is not None:
                pytest.fail(f"{child.name} exited ({child.process.returncode}):\n{child.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{child.name} not ready after {seconds} s:\n{child.tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Ask every process to stop (gunicorn: SIGINT, a quick shutdown; the others
        SIGTERM, which ends the batch or task in hand), then kill what is left of each
        session."""
        signals = {"web": signal.SIGINT}
        for child in self.children:
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signals.get(child.name[:3], signal.SIGTERM))
        deadline = time.monotonic() + 20
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            if child.process.poll() is None:
                child.process.kill()
                child.process.wait()


@pytest.fixture
def deployment(api_client_for):
    """Two gunicorn servers (two workers of two threads each), two `relay_outbox`
    processes, two Celery workers and one beat, on the test's database as the runtime
    role; stopped, and their Redis keys, Celery queue and temporary files removed, even if
    the test fails."""
    work = Path(tempfile.mkdtemp(prefix="ordertrack-many-"))
    run = f"ordertrack-test-many-{uuid.uuid4().hex[:10]}"
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
        "CACHE_KEY_PREFIX": run,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": f"{run}.celery",
        "EVENT_BUS_URL": settings.EVENT_BUS_URL,
        "EVENT_EXCHANGE": settings.EVENT_EXCHANGE,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "THROTTLE_INTEGRATOR": "1000000/minute",
        # No signing key here (production settings never generate one): no seals.
        "LEDGER_SEAL_INTERVAL_SECONDS": "3600",
        "LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "2",
    }
    for name in ("PYTEST_XDIST_WORKER", "ORDERTRACK_TEST_RUN_ID"):
        env.pop(name, None)
    deployment = Deployment(env=env, work=work)
    deployment.token = api_client_for("integrator").key
    try:
        yield deployment
    finally:
        deployment.stop()
        for child in deployment.children:  # shown when the test fails
            print(f"--- {child.name} (exit {child.process.returncode}):\n{child.tail()}")
        redis = get_redis_connection("default")
        for key in redis.scan_iter(f"{run}:*"):
            redis.delete(key)
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as connection:
            channel = connection.default_channel
            channel.queue_delete(f"{run}.celery")
            channel.exchange_delete(f"{run}.celery")
        shutil.rmtree(work, ignore_errors=True)


def _start(deployment: Deployment) -> tuple[Child, set[str]]:
    """The stalling relay first, until it stalls on the pending events; then everything
    else at once, and wait until each says it is ready. Returns the stalled relay and the
    ids of the events it published."""
    python = sys.executable
    stalling = deployment.start("relay1", [python, "-c", STALLING_RELAY])
    deployment.wait_for(stalling, lambda: "stalled after publishing" in stalling.tail())
    stalled = set(stalling.tail().split("stalled after publishing", 1)[1].split())
    servers, workers = [], []
    for n in (1, 2):
        port = free_port()
        servers.append(
            deployment.start(
                f"web{n}",
                [python, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
                GUNICORN_BIND=f"127.0.0.1:{port}",
                PROMETHEUS_MULTIPROC_DIR=str(deployment.work / f"metrics{n}"),
            )
        )
        deployment.servers.append(f"http://127.0.0.1:{port}")
        workers.append(
            deployment.start(
                f"worker{n}",
                [
                    *(python, "-m", "celery", "-A", "config", "worker", "-c", "2"),
                    *("-n", f"many{n}-{uuid.uuid4().hex[:6]}@%h", "--loglevel=INFO"),
                    # Not a word with other runs' workers on the shared broker.
                    *("--without-mingle", "--without-gossip", "--without-heartbeat"),
                ],
            )
        )
    relay = deployment.start("relay2", [python, "manage.py", "relay_outbox", "--interval", "0.05"])
    beat = deployment.start(
        "beat",
        [
            *(python, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO"),
            *("-s", str(deployment.work / "celerybeat-schedule")),
        ],
    )

    def says(child: Child, text: str) -> Callable[[], bool]:
        return lambda: text in child.log.read_text(errors="replace")

    def answers(url: str) -> Callable[[], bool]:
        def probe() -> bool:
            try:
                return requests.get(f"{url}/readyz", timeout=5).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                return False

        return probe

    for server, url in zip(servers, deployment.servers, strict=True):
        deployment.wait_for(server, answers(url))
    deployment.wait_for(relay, says(relay, "Relaying the outbox"))
    for worker in workers:
        deployment.wait_for(worker, says(worker, " ready."))
    deployment.wait_for(beat, says(beat, "beat: Starting"))
    return stalling, stalled


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)
    by_server: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)

    def note(self, server: int, what: str, response: requests.Response, allowed=(200, 412)):
        with self.lock:
            self.statuses[(what, response.status_code)] += 1
            if response.status_code == 200:
                self.by_server[server] += 1
            if response.status_code not in allowed:
                self.unexpected.append(f"{what} {response.status_code}: {response.text[:300]}")


class Writer:
    """Writes until `stop` is set, each request to the other server than the last: PATCH
    and adjust with If-Match from what it read last (a 412 gives the current ETag, and the
    write is tried again with it), atomic bulk batches with expected versions (read again
    on 412), and stock movements."""

    def __init__(self, seed: int, servers: list[str], token: str, orders: list[int], tally):
        self.rng, self.turn = random.Random(seed), seed
        self.servers, self.orders, self.tally = servers, orders, tally
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.versions: dict[int, int] = {}

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.write()
        except Exception as exc:  # noqa: BLE001 (the test fails on it; the thread must not die quietly)
            with self.tally.lock:
                self.tally.unexpected.append(f"writer: {type(exc).__name__}: {exc}")

    def send(self, method: str, path: str, body=None, **headers) -> tuple[int, requests.Response]:
        self.turn += 1
        server = self.turn % 2
        url = f"{self.servers[server]}/api/v1{path}"
        return server, self.session.request(method, url, json=body, headers=headers, timeout=30)

    def read(self, order: int) -> None:
        server, response = self.send("GET", f"/orders/{order}/")
        self.tally.note(server, "get", response, allowed=(200,))
        self.versions[order] = int(response.headers["ETag"].strip('"'))

    def with_if_match(self, what: str, order: int, method: str, path: str, body: dict) -> None:
        if order not in self.versions:
            self.read(order)
        for _ in range(20):
            if_match = {"If-Match": f'"{self.versions[order]}"'}
            server, response = self.send(method, path, body, **if_match)
            self.tally.note(server, what, response)
            if "ETag" in response.headers:
                self.versions[order] = int(response.headers["ETag"].strip('"'))
            if response.status_code != 412:
                return

    def bulk(self, pair: list[int]) -> None:
        for _ in range(20):
            for order in pair:
                if order not in self.versions:
                    self.read(order)
            items = [
                {"order": order, "sku": UNTRACKED, "delta": self.rng.choice([-1, 1]),
                 "expected_version": self.versions[order]}
                for order in pair
            ]  # fmt: skip
            body = {"items": items, "reason": "many processes"}
            server, response = self.send("POST", "/adjustments/bulk/?atomic=true", body)
            self.tally.note(server, "bulk", response)
            if response.status_code != 412:
                for result in response.json().get("results", []):
                    self.versions[result["order"]] = result["version"]
                return
            for order in pair:
                self.read(order)

    def write(self) -> None:
        rng, order, kind = self.rng, self.rng.choice(self.orders), self.rng.random()
        if kind < 0.3:
            lines = [
                {"sku": TRACKED, "quantity": rng.randint(20, 60)},
                {"sku": UNTRACKED, "quantity": rng.randint(100, 900)},
            ]
            body = {"lines": lines, "reason": "many processes"}
            self.with_if_match("patch", order, "PATCH", f"/orders/{order}/", body)
        elif kind < 0.6:
            sku, delta = rng.choice([TRACKED, UNTRACKED]), rng.choice([-2, -1, 1, 2])
            body = {"sku": sku, "delta": delta, "reason": "many processes"}
            self.with_if_match("adjust", order, "POST", f"/orders/{order}/adjust/", body)
        elif kind < 0.75:
            self.bulk(rng.sample(self.orders, 2))
        else:
            movement = rng.choice(["receive", "issue", "adjust"])
            body = {"sku": TRACKED, "location": rng.choice(PLACES), "reason": "many processes"}
            if movement == "adjust":
                body |= {"delta": rng.choice([-3, 3]), "reason_code": "correction"}
            else:
                body["quantity"] = rng.randint(1, 5)
            server, response = self.send("POST", f"/stock/{movement}/", body)
            self.tally.note(server, f"stock {movement}", response, allowed=(200,))


def _projections() -> dict[str, list]:
    """Every snapshot table's rows, without their surrogate ids."""
    return {
        "order_snapshots": list(OrderSnapshot.objects.order_by("order_id").values()),
        "sku_demand": list(SkuDemand.objects.order_by("sku").values()),
        "sku_daily": list(
            SkuDailyAdjustments.objects.order_by("sku", "day").values(
                "sku", "day", "adjustment_count", "net_delta"
            )
        ),
        "stock_totals": list(SkuStockTotals.objects.order_by("sku").values()),
        "daily_changes": list(
            DailyChangeCounts.objects.order_by("day", "ledger", "source").values(
                "day", "ledger", "source", "rows"
            )
        ),
    }


def test_two_servers_two_relays_two_workers_publish_every_event_in_order(deployment):
    # given: stock at two places, orders on a tracked and an untracked product, and a queue
    # bound to the run's exchange before any relay runs
    audit = Audit(actor="tester", source=Source.SYSTEM, reason="many processes")
    product_create(sku=TRACKED, name="Tea")
    product_create(sku=UNTRACKED, name="Mug", track_inventory=False)
    for place in PLACES:
        location_create(code=place, name=place)
        stock_receive(sku=TRACKED, location=place, quantity=100_000, audit=audit)
    orders = [
        order_create(
            customer_id=None, reference=f"MP-{n}", lines={TRACKED: 30, UNTRACKED: 500}, audit=audit
        ).pk
        for n in range(ORDERS)
    ]
    collector = EventCollector()
    try:
        started = time.monotonic()
        stalled_relay, stalled = _start(deployment)
        startup = time.monotonic() - started

        # when: writers go through both servers, and one relay is killed inside a batch
        stop, tally = threading.Event(), Tally()
        writers = [
            threading.Thread(
                target=Writer(n, deployment.servers, deployment.token, orders, tally).run,
                args=(stop,),
            )
            for n in range(WRITERS)
        ]
        writing = time.monotonic()
        for thread in writers:
            thread.start()
        try:
            time.sleep(WRITE_SECONDS / 3)
            pending = OutboxEvent.objects.filter(published_at__isnull=True).count()
            stalled_relay.process.send_signal(signal.SIGKILL)
            stalled_relay.process.wait()
            time.sleep(max(WRITE_SECONDS - (time.monotonic() - writing), 0))
        finally:
            stop.set()
            for thread in writers:
                thread.join(timeout=60)
        wrote = time.monotonic() - writing

        # then: the outbox drains, and the workers' projector catches up with the ledger
        drained = time.monotonic()
        eventually(
            lambda: OutboxEvent.objects.filter(published_at__isnull=True).count(),
            lambda pending: pending == 0,
            what="the outbox to drain",
        )
        drain = time.monotonic() - drained
        eventually(
            lambda: {name: lag.events_behind for name, lag in projection_lag().items()},
            lambda behind: not any(behind.values()),
            what="the projections to catch up",
        )
        catch_up = time.monotonic() - drained
        events = collector.collect(timeout=60)
    finally:
        collector.close()
    stopping = time.monotonic()
    deployment.stop()
    stopping = time.monotonic() - stopping

    assert tally.unexpected == [], tally.unexpected[:5]
    assert tally.by_server[0] > 0 and tally.by_server[1] > 0, tally.by_server
    assert stalled_relay.process.returncode == -signal.SIGKILL
    assert stalled
    assert OutboxEvent.objects.filter(dead_lettered_at__isnull=False).count() == 0

    # every outbox event was published, and nothing else
    outbox = {
        str(event_id): ((aggregate_type, aggregate_id), pk)
        for event_id, aggregate_type, aggregate_id, pk in OutboxEvent.objects.values_list(
            "event_id", "aggregate_type", "aggregate_id", "pk"
        )
    }
    received = Counter(event["id"] for event in events)
    assert set(received) - set(outbox) == set()
    assert set(outbox) - set(received) == set(), "events never published"
    # at least once: the killed relay's events again (its batch rolled back), nothing else
    duplicates = {event_id: n for event_id, n in received.items() if n > 1}
    assert duplicates == dict.fromkeys(stalled, 2)

    # in order per aggregate: as a consumer sees them (an id already seen dropped), and
    # even with the killed relay's copies left out: the other relays held back the later
    # events of its aggregates until they had sent its events again
    expected: dict[tuple, list[int]] = defaultdict(list)
    for aggregate, pk in sorted(outbox.values(), key=lambda row: row[1]):
        expected[aggregate].append(pk)
    deduplicated: dict[tuple, list[int]] = defaultdict(list)
    without_the_killed: dict[tuple, list[int]] = defaultdict(list)
    order_versions: dict[str, list[int]] = defaultdict(list)
    seen = set()
    for event in events:
        aggregate, pk = outbox[event["id"]]
        if event["id"] not in seen or event["id"] in stalled:
            without_the_killed[aggregate].append(pk)
        if event["id"] in seen:
            continue
        if event["id"] in stalled:
            without_the_killed[aggregate].pop()  # the killed relay's copy came first
        seen.add(event["id"])
        deduplicated[aggregate].append(pk)
        if aggregate[0] == "order":
            order_versions[aggregate[1]].append(event["data"]["aggregate_version"])
    assert deduplicated == expected
    assert without_the_killed == expected
    for order, versions in order_versions.items():
        assert versions == list(range(1, len(versions) + 1)), f"order {order}: {versions}"
    assert len(order_versions) == ORDERS

    # the projections the workers built side by side equal a rebuild from the ledger, and
    # the state matches the ledger (verify_ledger, which finds nothing left to project)
    assert not any(lag.events_behind for lag in projection_lag().values())
    built = _projections()
    applied = dict(ProjectionCheckpoint.objects.values_list("name", "applied_rows"))
    report = io.StringIO()
    try:
        call_command("verify_ledger", stdout=report)
    except SystemExit as exited:
        pytest.fail(f"verify_ledger exited {exited.code}:\n{report.getvalue()[-3000:]}")
    assert dict(ProjectionCheckpoint.objects.values_list("name", "applied_rows")) == applied
    projections_rebuild()
    assert _projections() == built

    statuses = Counter()
    for (_, status), n in tally.statuses.items():
        statuses[status] += n
    print(
        f"\nmany processes: started in {startup:.1f} s; {dict(statuses)} answered in "
        f"{wrote:.1f} s of writing ({dict(tally.by_server)} 200s per server); {len(outbox)} "
        f"events, {len(events)} messages, {len(duplicates)} duplicates (the killed relay's); "
        f"{pending} pending at the kill; outbox drained {drain:.1f} s and projections caught "
        f"up {catch_up:.1f} s after the writes stopped; stopping took {stopping:.1f} s"
    )
