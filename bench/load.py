"""`make bench`: the HTTP API under load, against PostgreSQL's raw limit for the same writes.

A benchmark, not a test: it prints a table and writes bench/results/bench-<timestamp>.json.
See bench/README.md. In one run, on 127.0.0.1 only:

1. seed the benchmark's own database (bench/seed.py: 10,000 orders, 4 orders with 10,000
   ledger entries each, an integrator token);
2. measure the raw PostgreSQL limit with pgbench on a copy of that database
   (bench/pgbench/single.sql: one adjustment per transaction; batch.sql: 1,000 per
   transaction), with 64 clients;
3. start gunicorn with the production settings (config.settings.production) on PostgreSQL,
   Redis (own db and key prefix) and RabbitMQ (own exchange and queue), plus the outbox
   relay (`manage.py relay_outbox`) and a projector loop for the write scenarios;
4. drive it from a separate load-generator process (this module, `generate`: asyncio +
   aiohttp, 64 concurrent keep-alive clients, a warm-up that is not counted, then a fixed
   measured window) through the scenarios: GET /healthz (the framework's floor), order
   reads, first history page of the 10,000-entry orders, PATCH (absolute quantity), POST
   adjust (delta), bulk adjustments (1,000 items per request; skipped, with a row saying
   so, where the endpoint is missing). Each scenario runs twice: closed loop (each client
   sends as soon as its previous answer came: maximum throughput), then paced at a fixed
   rate (open loop: the rate goal, or half the closed-loop throughput), whose latency is
   counted from each request's due time and judges the p99 targets;
5. after the last write scenario's paced phase, sample /readyz every 0.5 s and report when
   the outbox and projection lag fell back under 1 s;
6. stop everything it started and leave the shared services as they were.

Every write figure is also printed as a ratio to its pgbench limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PGBENCH_DIR = ROOT / "bench" / "pgbench"
VENV_BIN = Path(sys.executable).parent
# --tracing: every trace kept and exported (the worst case; production would sample), and a
# queue that does not drop spans at these rates (the SDK's default holds 2,048). The caller's
# environment wins (OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1).
TRACING_ENV = {
    "OTEL_SERVICE_NAME": "ordertrack-bench",
    "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
}
BULK_PATH = "/api/v1/adjustments/bulk/"
EXCHANGE = "ordertrack-bench-http.events"
REDIS_DB = 11
CACHE_PREFIX = "ordertrack-bench-http"
METRICS_TOKEN = secrets.token_urlsafe(24)  # this run's, for /readyz's details
LAG_GOAL_SECONDS = 1.0
LAG_RECOVERY_GOAL_SECONDS = 5.0
# Paced phase: a request sent later than this after its due time is a late start (the
# clients or their CPU could not keep the schedule); below it is timer noise.
LATE_START_MS = 10.0
# A paced phase meets its rate when it answered at least this share of the offered rate.
PACED_ACHIEVED_GOAL = 0.95
# Between a scenario's two phases, for the requests of the first to leave the server.
PHASE_PAUSE_SECONDS = 1.0

# name -> what it is, what it must reach (issue 15's targets), which pgbench limit it is
# compared with. rate_goal: items or requests/s, and the paced phase's rate (without one the
# paced phase runs at half the closed-loop peak); ratio_goal: of the pgbench limit;
# floor_goal, peer_goal: of the reference server's figure in the same rounds; healthz_goal:
# of the product's own GET /healthz figure.
SCENARIOS = {
    "floor": {"label": "floor: GET /healthz", "rate_goal": None, "p99_goal": None},
    "read": {
        "label": "order read GET /orders/{id}/",
        "rate_goal": None,
        "p99_goal": 10,
        "floor_goal": 1.5,
        "healthz_goal": 0.85,
    },
    "history": {"label": "history page 1 (10k entries)", "rate_goal": None, "p99_goal": 30},
    "patch": {
        "label": "adjust: PATCH /orders/{id}/",
        "rate_goal": None,
        "p99_goal": 50,
        "limit": "single",
        "floor_goal": 1.0,
        "peer_goal": 3.0,
    },
    "adjust": {
        "label": "adjust: POST /orders/{id}/adjust/",
        "rate_goal": None,
        "p99_goal": 50,
        "limit": "single",
        "floor_goal": 1.0,
        "peer_goal": 3.0,
    },
    "bulk": {
        "label": "bulk POST /adjustments/bulk/",
        "rate_goal": 25000,  # the moonshot; the paced phase offers it
        "p99_goal": None,
        "limit": "batch",
        "ratio_goal": 0.5,
    },
    # Each client's batches touch its own orders (ORDERS // --bulk-items clients, each with
    # its own --bulk-items orders): no batch waits for another's locks (issue 15).
    "bulk-own": {
        "label": "bulk, own orders POST /adjustments/bulk/",
        "rate_goal": None,
        "p99_goal": 1000,
        "limit": "batch",
        "ratio_goal": 0.5,
    },
}
# The goals on ratios to other figures: the key in SCENARIOS, the row's field, its name.
RELATIVE_GOALS = (
    ("floor_goal", "vs_floor", "floor"),
    ("peer_goal", "vs_peer", "peer"),
    ("healthz_goal", "vs_healthz", "healthz"),
)
WRITES = ("patch", "adjust", "bulk", "bulk-own")
BULK = ("bulk", "bulk-own")
# The reference servers (bench/floor, bench/peer) and the scenarios each answers: those are
# measured on the product and on each of them in turn, --rounds times (issue 15).
REFERENCES = {
    "floor": "bench.floor.wsgi:application",
    "peer": "bench.peer.wsgi:application",
}
ANSWERS = {
    "floor": ("floor", "read", "patch", "adjust", "bulk-own", "bulk"),
    "peer": ("floor", "read", "patch", "adjust"),
}
COMPARED = ANSWERS["floor"]


# --- the load generator (a process of its own; imports nothing from the project) -------


def _request_builder(cfg: dict, client: int = 0):
    """scenario -> a function rng -> (method, path, body or None, items); `client` is the
    client's number (bulk-own: which orders are its own)."""
    import orjson

    orders, lines, untracked = cfg["orders"], cfg["lines_per_order"], cfg["untracked"]
    scenario = cfg["scenario"]

    def sku(order_id: int, k: int) -> str:  # bench.seed.order_skus, without Django
        return f"BENCH-U-{(order_id * 3 + k) % untracked:03d}"

    if scenario == "floor":
        return lambda rng: ("GET", "/healthz", None, 1)
    if scenario == "read":
        return lambda rng: ("GET", f"/api/v1/orders/{rng.randint(1, orders)}/", None, 1)
    if scenario == "history":
        ids = cfg["history_orders"]
        return lambda rng: ("GET", f"/api/v1/orders/{rng.choice(ids)}/history/", None, 1)
    if scenario == "patch":

        def patch(rng):
            order_id = rng.randint(1, orders)
            body = {
                "lines": [
                    {
                        "sku": sku(order_id, rng.randrange(lines)),
                        "quantity": rng.randint(1000, 10**5),
                    }
                ],
                "reason": "bench: absolute quantity",
            }
            return "PATCH", f"/api/v1/orders/{order_id}/", orjson.dumps(body), 1

        return patch
    if scenario == "adjust":

        def adjust(rng):
            order_id = rng.randint(1, orders)
            body = {
                "sku": sku(order_id, rng.randrange(lines)),
                "delta": rng.choice((-3, -2, -1, 1, 2, 3)),
                "reason": "bench: delta",
            }
            return "POST", f"/api/v1/orders/{order_id}/adjust/", orjson.dumps(body), 1

        return adjust
    if scenario == "bulk":
        size = cfg["bulk_items"]

        def bulk(rng):
            items = [
                {
                    "order": order_id,
                    "sku": sku(order_id, rng.randrange(lines)),
                    "delta": rng.choice((-1, 1)),
                }
                for order_id in rng.sample(range(1, orders + 1), size)
            ]
            body = {"items": items, "reason": "bench: bulk"}
            return "POST", BULK_PATH, orjson.dumps(body), size

        return bulk
    if scenario == "bulk-own":
        size = cfg["bulk_items"]
        own = range(1 + client * size, 1 + (client + 1) * size)

        def bulk_own(rng):
            items = [
                {
                    "order": order_id,
                    "sku": sku(order_id, rng.randrange(lines)),
                    "delta": rng.choice((-1, 1)),
                }
                for order_id in rng.sample(own, size)
            ]
            body = {"items": items, "reason": "bench: bulk, own orders"}
            return "POST", BULK_PATH, orjson.dumps(body), size

        return bulk_own
    raise ValueError(f"unknown scenario {scenario!r}")


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def _generate(cfg: dict) -> dict:
    """Closed loop when cfg["rate"] is None (each client sends its next request when the
    previous one is answered: maximum throughput); otherwise paced (open loop): slot i is
    due at window_start + i / rate, each client takes the next slot, waits for its due time
    and sends, and latency counts from the due time, so a request that could not be sent
    on time is charged its wait (coordinated omission, as wrk2 corrects it). No slot is
    taken at or after window_end; the requests in flight then are waited for."""
    import aiohttp
    import orjson

    bulk = cfg["scenario"] in BULK
    clients, base, rate = cfg["clients"], cfg["base_url"], cfg.get("rate")
    headers = {
        "Authorization": f"Token {cfg['token']}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=cfg["request_timeout"])
    started = time.perf_counter_ns()
    window_start = started + int(cfg["warmup"] * 1e9)
    window_end = window_start + int(cfg["duration"] * 1e9)
    # (due, sent, answered, status, items, X-Cache, failed items); closed loop: due = sent.
    samples: list[tuple[int, int, int, int, int, str | None, int]] = []
    failures: Counter = Counter()
    cpu: dict[str, float] = {}

    def cpu_now() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    async def marks() -> None:
        await asyncio.sleep((window_start - time.perf_counter_ns()) / 1e9)
        cpu["start"] = cpu_now()
        print("window-start", flush=True)
        await asyncio.sleep((window_end - time.perf_counter_ns()) / 1e9)
        cpu["end"] = cpu_now()
        print("window-end", flush=True)

    async def send(session, request) -> tuple[int, int, int, int, str | None, int]:
        method, path, body, items = request
        failed = 0
        t0 = time.perf_counter_ns()
        try:
            async with session.request(method, base + path, data=body) as response:
                content = await response.read()
                status, cache = response.status, response.headers.get("X-Cache")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            status, cache = 0, None
            failures[type(exc).__name__] += 1
        t1 = time.perf_counter_ns()
        if bulk and status == 200:
            # A 200 may carry failed items: count the applied ones only.
            outcome = orjson.loads(content)
            items, failed = outcome["applied"], outcome["failed"]
        return t0, t1, status, items, cache, failed

    async def closed_client(session, n: int) -> None:
        rng = random.Random(cfg["seed"] * 1000 + n)
        build = _request_builder(cfg, n)
        while time.perf_counter_ns() < window_end:
            sample = await send(session, build(rng))
            samples.append((sample[0], *sample))
            if sample[2] == 0:
                await asyncio.sleep(0.01)

    # Slots are numbered from the window's start; the warm-up's are negative.
    next_slot = -math.floor(cfg["warmup"] * rate) if rate else 0
    dropped_warmup_slots = 0

    def take_slot() -> int:
        nonlocal next_slot, dropped_warmup_slots
        if next_slot < 0 and time.perf_counter_ns() >= window_start:
            # Warm-up slots still untaken when the window opens are dropped: at a rate the
            # server cannot keep, their backlog would otherwise fill the whole window.
            dropped_warmup_slots, next_slot = -next_slot, 0
        next_slot += 1
        return next_slot - 1

    async def paced_client(session, n: int) -> None:
        rng = random.Random(cfg["seed"] * 1000 + n)
        build = _request_builder(cfg, n)
        while time.perf_counter_ns() < window_end:
            due = window_start + round(take_slot() * 1e9 / rate)
            if due >= window_end:
                break
            request = build(rng)  # before the wait: a bulk body takes milliseconds
            wait = due - time.perf_counter_ns()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)
            samples.append((due, *await send(session, request)))

    client = paced_client if rate else closed_client
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout, skip_auto_headers=["User-Agent"]
    ) as session:
        marker = asyncio.create_task(marks())
        await asyncio.gather(*(client(session, n) for n in range(clients)))
        await marker

    # Throughput: the answers that arrived within the window. Latency and errors: every
    # request due (closed loop: sent) within the window, however late its answer came (the
    # clients stop at the window's end, but every request in flight is waited for), so
    # that slow answers are not censored when latency approaches the window's length.
    window = [s for s in samples if window_start <= s[2] < window_end]
    measured = [s for s in samples if window_start <= s[0] < window_end]
    seconds = (window_end - window_start) / 1e9
    ok = [s for s in window if 200 <= s[3] < 300]
    ok_measured = [s for s in measured if 200 <= s[3] < 300]
    latencies = sorted((s[2] - s[0]) / 1e6 for s in ok_measured)
    service = sorted((s[2] - s[1]) / 1e6 for s in ok_measured)
    lateness = [(s[1] - s[0]) / 1e6 for s in measured]
    offered = math.ceil(cfg["duration"] * rate) if rate else None
    statuses = Counter(str(s[3]) for s in measured)
    return {
        "scenario": cfg["scenario"],
        "mode": "paced" if rate else "closed",
        "clients": clients,
        "warmup_seconds": cfg["warmup"],
        "seconds": seconds,
        "offered_per_second": rate,
        "offered": offered,
        "requests": len(window),
        "ok": len(ok),
        "sent": len(measured),
        "unsent": max(0, offered - len(measured)) if rate else 0,
        "late_starts": sum(1 for late in lateness if late > LATE_START_MS),
        "max_late_ms": max(lateness, default=None),
        "errors": sum(1 for s in measured if not 200 <= s[3] < 300),
        "statuses": dict(statuses),
        "failures": dict(failures),
        "requests_per_second": len(ok) / seconds,
        "items_per_second": sum(s[4] for s in ok) / seconds,
        "items_per_request": cfg["bulk_items"] if bulk else 1,
        "item_failures": sum(s[6] for s in measured),
        "p50_ms": _percentile(latencies, 0.50),
        "p95_ms": _percentile(latencies, 0.95),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else None,
        "mean_ms": sum(latencies) / len(latencies) if latencies else None,
        "service_p99_ms": _percentile(service, 0.99),
        "x_cache": dict(Counter(s[5] for s in ok if s[5])),
        "warmup_requests": sum(1 for s in samples if s[2] < window_start),
        "dropped_warmup_slots": dropped_warmup_slots,
        "client_cpu_seconds": cpu.get("end", 0.0) - cpu.get("start", 0.0),
    }


async def _warm(cfg: dict) -> dict:
    """GET every order once (not measured), so the read scenario meets a warm cache."""
    import aiohttp

    ids = list(range(1, cfg["orders"] + 1))
    statuses: Counter = Counter()
    headers = {"Authorization": f"Token {cfg['token']}", "Accept": "application/json"}
    connector = aiohttp.TCPConnector(limit=cfg["clients"], ttl_dns_cache=None)
    started = time.perf_counter()

    async def client(session, n: int) -> None:
        for order_id in ids[n :: cfg["clients"]]:
            async with session.get(f"{cfg['base_url']}/api/v1/orders/{order_id}/") as response:
                await response.read()
                statuses[f"{response.status} {response.headers.get('X-Cache')}"] += 1

    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        await asyncio.gather(*(client(session, n) for n in range(cfg["clients"])))
    return {"warmed": len(ids), "seconds": time.perf_counter() - started, "statuses": statuses}


def generate_main(config: str) -> None:
    cfg = json.loads(config)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    result = asyncio.run(_warm(cfg) if cfg["scenario"] == "warm" else _generate(cfg))
    print("RESULT " + json.dumps(result), flush=True)


# --- helper process: the projector loop ------------------------------------------------


def projector_main(interval: float) -> None:
    """Fold the ledger into the projections every `interval` seconds (what beat's
    project_ledger task does every PROJECTOR_INTERVAL_SECONDS), until SIGTERM."""
    import django

    django.setup()
    from django.db import connection

    from config.tracing import tracing_setup, tracing_shutdown
    from history.projector import projections_run

    tracing_setup()  # as a Celery worker does: on only with OTEL_EXPORTER_OTLP_ENDPOINT
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        started = time.monotonic()
        projections_run()
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    tracing_shutdown()
    connection.close()


# --- the orchestrator -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0, headers: dict | None = None) -> tuple[int, dict]:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(ValueError):
            return exc.code, json.loads(exc.read())
        return exc.code, {}


def _proc_stat(pid: int | str) -> tuple[int, float] | None:
    """(process group, user + system CPU seconds) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class CpuMeter:
    """CPU seconds per group of processes: ours by process group, the services by name
    (postgres counts every backend on the machine, not only ours), and the whole machine.
    A process counts what it used between two samples (from 0 if it started in between;
    one that exited in between is missed)."""

    SERVICES = {
        "postgres": "postgres",
        "redis-server": "redis",
        "beam.smp": "rabbitmq",
        "pgbench": "pgbench",
    }

    def __init__(self, groups: dict[str, int]):
        self.groups = groups  # label -> process group id

    def sample(self) -> dict:
        by_pgid = {pgid: label for label, pgid in self.groups.items()}
        procs = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            stat = _proc_stat(proc.name)
            if stat is None:
                continue
            pgid, seconds = stat
            label = by_pgid.get(pgid) or self.SERVICES.get(_comm(proc.name))
            if label:
                procs[proc.name] = (label, seconds)
        # The whole machine, from /proc/stat (busy = everything but idle and iowait).
        ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        return {"procs": procs, "machine": busy}

    @staticmethod
    def cores(before: dict, after: dict, seconds: float) -> dict[str, float]:
        used: Counter = Counter()
        for pid, (label, cpu) in after["procs"].items():
            used[label] += cpu - before["procs"].get(pid, (label, 0.0))[1]
        used["machine"] = after["machine"] - before["machine"]
        used["other"] = used["machine"] - sum(v for k, v in used.items() if k != "machine")
        return {k: round(v / seconds, 2) for k, v in sorted(used.items())}


class Stack:
    """gunicorn, the relay and the projector, each in a process group of its own. `name` and
    `app`: a reference server's (bench/floor, bench/peer) gunicorn, with the same settings."""

    def __init__(
        self,
        args,
        env: dict[str, str],
        name: str = "gunicorn",
        app: str = "config.wsgi:application",
    ):
        self.args, self.env, self.name, self.app = args, env, name, app
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = ROOT / "var" / "bench-logs"

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def gunicorn_argv(self) -> list[str]:
        argv = [str(VENV_BIN / "gunicorn")]
        config = ROOT / "config" / "gunicorn.py"
        if config.exists():
            argv += ["--config", str(config)]
        argv += [
            self.app,
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.args.workers),
            "--worker-class", self.args.worker_class,
            "--threads", str(self.args.threads),
            "--backlog", "2048",
            "--log-level", "warning",
        ]  # fmt: skip
        return argv

    def start_web(self) -> None:
        self._start(self.name, self.gunicorn_argv())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.procs[self.name].poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.logs / (self.name + '.log')}")
            with contextlib.suppress(OSError):
                status, _ = _get_json(self.base_url + "/healthz", timeout=1)
                if status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer /healthz within 60 s")

    def start_workers(self) -> None:
        python = sys.executable
        self._start(
            "relay",
            [python, "manage.py", "relay_outbox", "--interval", str(self.args.relay_interval)],
        )
        self._start(
            "projector",
            [
                python,
                "-m",
                "bench.load",
                "projector",
                "--interval",
                str(self.args.projector_interval),
            ],
        )

    def start_collector(self) -> str:
        """A local OTLP receiver that discards what it gets (tools/trace_view.py --discard);
        returns its endpoint."""
        port = _free_port()
        self._start(
            "collector",
            [sys.executable, "tools/trace_view.py", "--discard", "--port", str(port)],
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return f"http://127.0.0.1:{port}"
            time.sleep(0.1)
        raise RuntimeError(f"the OTLP receiver did not listen; see {self.logs / 'collector.log'}")

    def pgid(self, name: str) -> int | None:
        proc = self.procs.get(name)
        return proc.pid if proc else None

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()


def production_env(args, database_url: str) -> dict[str, str]:
    """The environment config.settings.production reads, pointing at the benchmark's own
    database, Redis db and key prefix, and exchange."""
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("BENCH_", "TEST_")):
            env.pop(name)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "DEBUG": "false",
            "DATABASE_URL": database_url,
            "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "CACHE_KEY_PREFIX": CACHE_PREFIX,
            "EVENT_BUS_URL": args.amqp_url,
            "CELERY_BROKER_URL": args.amqp_url,
            "EVENT_EXCHANGE": EXCHANGE,
            # The relay runs as its own process here; a kick would queue Celery tasks that
            # no worker runs.
            "RELAY_KICK_ON_COMMIT": "false",
            # 64 clients share one integrator's token at thousands of requests a second: far
            # above the production default (6000/minute per token). The limit is raised, not
            # switched off, so every request still pays for its count in Redis, as in
            # production.
            "THROTTLE_INTEGRATOR": "1000000000/minute",
            # /readyz answers its details (the lag the bench samples) to this token only.
            "METRICS_TOKEN": METRICS_TOKEN,
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if (ROOT / "config" / "gunicorn.py").exists() and "PROMETHEUS_MULTIPROC_DIR" not in env:
        folder = ROOT / "var" / "bench-prometheus"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return env


def clear_redis_keys() -> int:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    deleted = 0
    for key in client.scan_iter(match=f"{CACHE_PREFIX}:*", count=1000):
        deleted += client.delete(key)
    client.close()
    return deleted


# --- pgbench --------------------------------------------------------------------------


def pgbench(script: str, database: str, *, clients: int, seconds: float, rows: int) -> dict:
    from django.conf import settings

    db = settings.DATABASES["default"]
    argv = [
        "pgbench", "-n", "-M", "prepared",
        "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
        "-f", str(PGBENCH_DIR / script),
        "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432),
        "-U", db["USER"] or "postgres", database,
    ]  # fmt: skip
    env = {**os.environ, "PGPASSWORD": db["PASSWORD"] or ""}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    # CPU from 1 s in to 1 s before the end, while pgbench and its backends are alive.
    meter = CpuMeter({})
    time.sleep(1.0)
    before, started = meter.sample(), time.monotonic()
    time.sleep(max(0.5, seconds - 2.0))
    cores = CpuMeter.cores(before, meter.sample(), time.monotonic() - started)
    text, _ = proc.communicate()
    tps = re.search(r"tps = ([\d.]+) \(without", text)
    latency = re.search(r"latency average = ([\d.]+) ms", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    if proc.returncode or not tps:
        raise RuntimeError(f"pgbench {script} failed:\n{text[-2000:]}")
    return {
        "script": f"bench/pgbench/{script}",
        "command": " ".join(argv),
        "clients": clients,
        "seconds": seconds,
        "tps": float(tps.group(1)),
        "rows_per_transaction": rows,
        "rows_per_second": float(tps.group(1)) * rows,
        "latency_avg_ms": float(latency.group(1)) if latency else None,
        "failed": int(failed.group(1)) if failed else None,
        "cores": cores,
    }


def _cores_text(run: dict) -> str:
    cores = run["cores"]
    return (
        ", ".join(f"{name} {cores.get(name, 0.0):.2f}" for name in ("postgres", "pgbench", "other"))
        + " cores"
    )


def pgbench_limits(args, database: str) -> dict:
    """Run the pgbench scripts on a throwaway copy of the seeded database."""
    from django.db import connection

    copy = f"{database}_pgbench"
    connection.close()
    _admin_sql(f'DROP DATABASE IF EXISTS "{copy}"')
    _admin_sql(f'CREATE DATABASE "{copy}" TEMPLATE "{database}"')
    try:
        single = pgbench(
            "single.sql", copy, clients=args.clients, seconds=args.pgbench_seconds, rows=1
        )
        print(
            f"  single: {single['tps']:,.0f} adjustments/s "
            f"(latency avg {single['latency_avg_ms']:.1f} ms; {_cores_text(single)})",
            flush=True,
        )
        batches = []
        for clients in sorted({args.clients, *args.batch_clients}, reverse=True):
            run = pgbench(
                "batch.sql", copy, clients=clients, seconds=args.pgbench_seconds, rows=1000
            )
            print(
                f"  batch x{clients} clients: {run['rows_per_second']:,.0f} rows/s "
                f"({run['tps']:.1f} tx/s of 1,000, latency avg {run['latency_avg_ms']:.0f} ms; "
                f"{_cores_text(run)})",
                flush=True,
            )
            batches.append(run)
        batch = max(batches, key=lambda r: r["rows_per_second"])
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{copy}"')
    return {"single": single, "batch": batch, "batch_runs": batches}


def _admin_sql(statement: str) -> None:
    from django.conf import settings

    from bench import postgres

    with postgres.connect(settings.DATABASES["default"]) as conn:
        conn.execute(statement)


# --- scenarios ------------------------------------------------------------------------


def bulk_available(base_url: str, token: str) -> tuple[bool, str]:
    request = urllib.request.Request(
        base_url + BULK_PATH,
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return True, f"probe answered {response.status}"
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405):
            return False, f"not available: POST {BULK_PATH} answered {exc.code}"
        return True, f"probe answered {exc.code}"


def generator_config(name: str, args, stack: Stack, token: str) -> dict:
    from bench.seed import LINES_PER_ORDER, ORDERS, UNTRACKED, history_order_ids

    return {
        "scenario": name,
        "base_url": stack.base_url,
        "token": token,
        "clients": bulk_own_clients(args) if name == "bulk-own" else args.clients,
        "warmup": args.warmup,
        "duration": args.duration,
        "orders": ORDERS,
        "lines_per_order": LINES_PER_ORDER,
        "untracked": UNTRACKED,
        "history_orders": history_order_ids(),
        "bulk_items": args.bulk_items,
        "request_timeout": 60.0,
        "seed": args.seed,
    }


def bulk_own_clients(args) -> int:
    from bench.seed import ORDERS

    return max(1, min(args.clients, ORDERS // args.bulk_items))


def warm_cache(args, stack: Stack, token: str) -> dict:
    cfg = generator_config("warm", args, stack, token)
    out = subprocess.run(
        [sys.executable, "-m", "bench.load", "generate", json.dumps(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1][len("RESULT ") :])


def run_scenario(
    name: str,
    args,
    stack: Stack,
    token: str,
    meter: CpuMeter,
    rate: float | None = None,
    server: str = "product",
    round_: int | None = None,
) -> dict:
    """One phase of a scenario: closed loop (rate None) or paced at `rate` requests/s, on the
    product or on a reference server (`server`: floor, peer)."""
    cfg = generator_config(name, args, stack, token) | {"rate": rate}
    load = os.getloadavg()[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.load", "generate", json.dumps(cfg)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    meter.groups["client"] = proc.pid
    result, before, cores = None, None, {}
    for line in proc.stdout:
        line = line.strip()
        if line == "window-start":
            before = meter.sample()
            started = time.monotonic()
        elif line == "window-end" and before is not None:
            ended = time.monotonic()
            cores = CpuMeter.cores(before, meter.sample(), ended - started)
        elif line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    proc.wait()
    if result is None:
        raise RuntimeError(f"the load generator failed in scenario {name}")
    # The clients stop sending at the window's end; the load stops when the requests then
    # in flight have been answered, which is when the generator exits.
    drained = time.monotonic() - ended
    result.update(
        {
            "name": name,
            "server": server,
            "round": round_,
            "phase": "paced" if rate else "max",
            "cores": cores,
            "load_before": load,
            "drain_seconds": round(drained, 2),
        }
    )
    return result


def paced_rate(name: str, closed: dict, args) -> float | None:
    """Requests/s for the paced phase: --paced-rate, else the scenario's rate goal, else
    half the throughput its closed-loop phase reached (None: no paced phase)."""
    if args.no_paced:
        return None
    if name in args.paced_rates:
        return args.paced_rates[name]
    goal = SCENARIOS[name]["rate_goal"]
    if goal:
        return goal / args.bulk_items if name in BULK else goal
    return round(closed["requests_per_second"] / 2) or None


def phase_label(result: dict, rounds: int = 1) -> str:
    label = SCENARIOS[result["name"]]["label"]
    server = result.get("server", "product")
    if server != "product":
        label = f"[{server}] {label}"
    if result.get("round"):
        label += f" round {result['round']}"
    if result["phase"] == "paced":
        rate = _rate_text(result["offered_per_second"])
        if result["items_per_request"] > 1:
            return f"{label} (paced {rate}/s x {result['items_per_request']:,} items)"
        return f"{label} (paced {rate}/s)"
    median = f", median of {rounds} rounds" if rounds > 1 else ""
    return f"{label} (max, {result['clients']} clients{median})"


def _rate_text(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"


def phase_summary(result: dict) -> str:
    bulk = result["name"] in BULK
    answered = result["requests_per_second"]
    items = f" ({result['items_per_second']:,.0f} items/s)" if bulk else ""
    if result["phase"] == "paced":
        offered = result["offered_per_second"]
        text = (
            f"  offered {_rate_text(offered)} req/s, answered {answered:,.1f} req/s = "
            f"{answered / offered:.0%}{items}; from the due time p50 "
            f"{_fmt(result['p50_ms'], '.1f')} ms, p99 {_fmt(result['p99_ms'], '.1f')} ms, max "
            f"{_fmt(result['max_ms'], '.1f')} ms; service p99 "
            f"{_fmt(result['service_p99_ms'], '.1f')} ms; started > {LATE_START_MS:.0f} ms late "
            f"{_late_text(result)}, at most {_fmt(result['max_late_ms'], ',.0f')} ms"
        )
    else:
        text = (
            f"  {answered:,.0f} req/s{items}, p50 {_fmt(result['p50_ms'], '.1f')} ms, "
            f"p99 {_fmt(result['p99_ms'], '.1f')} ms"
        )
    return (
        text
        + f", errors {result['errors']} {result['statuses']}"
        + (f", X-Cache {result['x_cache']}" if result["x_cache"] else "")
        + (f", failed items {result['item_failures']:,}" if bulk else "")
        + ", in flight answered "
        f"{result['drain_seconds']:.1f} s after the clients stopped"
    )


def sample_lag(base_url: str, seconds: float, every: float = 0.5) -> list[dict]:
    """Every `every` s for `seconds` s from now (the moment the load stops): the outbox
    backlog and the projection lag, read from the database with the functions /readyz
    uses, and /readyz itself (in a thread per probe, as it may queue behind the requests
    still in flight)."""
    from django.db import connection

    from history.projector import projection_lag
    from history.selectors import outbox_backlog

    probes: dict[int, dict] = {}

    def probe(n: int) -> None:
        sent = time.monotonic()
        try:
            status, body = _get_json(
                base_url + "/readyz",
                timeout=seconds + 10,
                headers={"Authorization": f"Bearer {METRICS_TOKEN}"},  # the details
            )
        except OSError as exc:
            probes[n] = {"readyz_error": str(exc)[:200]}
            return
        projections = body.get("projections", {}).values()
        probes[n] = {
            "readyz_status": status,
            "readyz_ms": round(1000 * (time.monotonic() - sent), 1),
            "readyz_outbox_seconds": body.get("outbox", {}).get("seconds_behind"),
            "readyz_projection_seconds": max(
                (p.get("seconds_behind", 0.0) for p in projections), default=0.0
            ),
        }

    samples, threads, started = [], [], time.monotonic()
    for n in range(int(seconds / every) + 1):
        time.sleep(max(0.0, started + n * every - time.monotonic()))
        thread = threading.Thread(target=probe, args=(n,), daemon=True)
        thread.start()
        threads.append(thread)
        at = time.monotonic() - started
        backlog, lag = outbox_backlog(), projection_lag()
        samples.append(
            {
                "t": round(at, 2),
                "outbox_pending": backlog["pending"],
                "outbox_seconds": backlog["seconds_behind"],
                "projection_events": max(p.events_behind for p in lag.values()),
                "projection_seconds": max(p.seconds_behind for p in lag.values()),
            }
        )
    for thread in threads:
        thread.join(timeout=seconds + 15)
    connection.close()
    for n, sample in enumerate(samples):
        sample.update(probes.get(n, {"readyz_error": "no answer"}))
    return samples


def lag_recovery(samples: list[dict]) -> float | None:
    """Seconds after the load stopped from which every sample had both lags under 1 s."""
    recovered = None
    for s in samples:
        fine = s["outbox_seconds"] < LAG_GOAL_SECONDS and s["projection_seconds"] < LAG_GOAL_SECONDS
        if fine and recovered is None:
            recovered = s["t"]
        elif not fine:
            recovered = None
    return recovered


# --- report ---------------------------------------------------------------------------


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(header: tuple, lines: list[tuple]) -> str:
    lines = [header, *lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:-2], widths[1:-2], strict=True)]
        cells += [line[-2].ljust(widths[-2]), line[-1].ljust(widths[-1])]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _goal_text(spec: dict, unit: str, phase: str | None) -> str:
    """The part of the target a row is judged on: rate and ratio on the closed-loop row,
    p99 and the offered rate on the paced row (phase None: all of it)."""
    parts = []
    if phase != "paced" and spec.get("rate_goal"):
        parts.append(f">= {spec['rate_goal']:,} {unit}")
    if phase != "max" and spec.get("p99_goal"):
        parts.append(f"p99 < {spec['p99_goal']} ms")
    if phase != "paced" and spec.get("ratio_goal"):
        parts.append(f">= {spec['ratio_goal']:.0%} of limit")
    for key, _field, name in RELATIVE_GOALS:
        if phase != "paced" and spec.get(key):
            parts.append(f">= {spec[key]}x {name}")
    if phase == "paced" and _has_target(spec):
        parts.append(f">= {PACED_ACHIEVED_GOAL:.0%} answered")
    return ", ".join(parts)


def _has_target(spec: dict) -> bool:
    goals = ("rate_goal", "p99_goal", "ratio_goal", *(key for key, _, _ in RELATIVE_GOALS))
    return any(spec.get(goal) for goal in goals)


def evaluate(spec: dict, closed: dict, paced: dict | None) -> tuple[bool | None, list[str]]:
    """Whether a scenario met its target, and what it missed. Rate and ratio come from the
    closed-loop row (maximum throughput); p99 from the paced row, whose latency is not
    queueing behind 64 clients, provided it was paced at the goal rate (or more), answered
    at least 95% of it, and had no errors."""
    if not _has_target(spec):
        return None, []
    missed = []
    if closed["errors"] or closed.get("item_failures"):
        missed.append("errors")
    if spec.get("rate_goal") and closed["figure"] < spec["rate_goal"]:
        missed.append("rate")
    if spec.get("ratio_goal") and (closed.get("ratio") or 0) < spec["ratio_goal"]:
        missed.append("ratio")
    for key, field, name in RELATIVE_GOALS:
        if spec.get(key) and (closed.get(field) or 0) < spec[key]:
            got = closed.get(field)
            missed.append(f"{name} {got:.2f}" if got is not None else f"no {name} figure")
    if paced is None:
        if spec.get("p99_goal"):
            return (False if missed else None), [*missed, "no paced p99"]
        return not missed, missed
    if (paced["errors"] or paced.get("item_failures")) and "errors" not in missed:
        missed.append("errors")
    if spec.get("p99_goal") and (paced["p99_ms"] is None or paced["p99_ms"] >= spec["p99_goal"]):
        missed.append("p99")
    if paced["figure"] < PACED_ACHIEVED_GOAL * paced["offered"]:
        missed.append(f"{paced['figure'] / paced['offered']:.0%} answered")
    if spec.get("rate_goal") and paced["offered"] < spec["rate_goal"]:
        missed.append("paced below the rate goal")
    return not missed, missed


def _empty_row(scenario: str, goal: str) -> dict:
    return {
        "scenario": scenario,
        "phase": None,
        "figure": None,
        "unit": "",
        "offered": None,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
        "service_p99_ms": None,
        "mean_ms": None,
        "errors": None,
        "ratio": None,
        "goal": goal,
        "met": None,
    }


def build_rows(limits: dict | None, results: list[dict], skipped: dict, lag: dict | None):
    rows = []
    if limits:
        single, batch = limits["single"], limits["batch"]
        for label, run, figure, unit, goal in (
            ("single", single, single["tps"], "writes/s", "(the limit for single writes)"),
            ("batch", batch, batch["rows_per_second"], "rows/s", "(the limit for batched writes)"),
        ):
            row = _empty_row(f"LIMIT pgbench {label}.sql x{run['clients']}", goal)
            row.update(
                {
                    "figure": figure,
                    "unit": unit,
                    "mean_ms": run["latency_avg_ms"],
                    "errors": run["failed"],
                }
            )
            rows.append(row)
    phases: dict[str, dict[str, dict]] = {}
    rounds: dict[tuple[str, str], list[dict]] = {}  # (scenario, server) -> max phases
    for r in results:
        if r["phase"] == "max":
            rounds.setdefault((r["name"], r.get("server", "product")), []).append(r)
        if r.get("server", "product") == "product":
            phases.setdefault(r["name"], {})[r["phase"]] = r
    for name, by_phase in phases.items():
        ratios = reference_ratios(name, rounds)
        if len(rounds.get((name, "product"), ())) > 1:
            by_phase["max"] = _median_round(rounds[(name, "product")])
        spec = SCENARIOS[name]
        bulk = name in BULK
        unit, goal_unit = ("items/s", "items/s") if bulk else ("req/s", "/s")
        limit = None
        if limits and spec.get("limit") == "single":
            limit = limits["single"]["tps"]
        elif limits and spec.get("limit") == "batch":
            limit = limits["batch"]["rows_per_second"]
        scenario_rows = {}
        for phase, r in by_phase.items():
            figure = r["items_per_second"] if bulk else r["requests_per_second"]
            is_paced = phase == "paced"
            offered = r["offered_per_second"] * r["items_per_request"] if is_paced else None
            scenario_rows[phase] = row = {
                "scenario": phase_label(r | {"round": None}, len(rounds[(name, "product")])),
                "phase": phase,
                "figure": figure,
                "unit": unit,
                "offered": offered,
                "p50_ms": r["p50_ms"],
                "p95_ms": r["p95_ms"],
                "p99_ms": r["p99_ms"],
                "service_p99_ms": r["service_p99_ms"] if is_paced else None,
                "late_starts": r["late_starts"] if is_paced else None,
                "unsent": r["unsent"] if is_paced else None,
                "sent": r["sent"],
                "mean_ms": r["mean_ms"],
                "errors": r["errors"],
                "item_failures": r.get("item_failures", 0),
                "ratio": figure / limit if limit and not is_paced else None,
                "vs_floor": None if is_paced else ratios.get("floor"),
                "vs_peer": None if is_paced else ratios.get("peer"),
                "goal": _goal_text(spec, goal_unit, phase),
                "met": None,
                "missed": [],
            }
            rows.append(row)
        closed, paced = scenario_rows.get("max"), scenario_rows.get("paced")
        if closed is None:
            continue
        healthz = rounds.get(("floor", "product"))
        if healthz and name != "floor":
            closed["vs_healthz"] = closed["figure"] / _figure(_median_round(healthz))
        if paced is None:
            closed["goal"] = _goal_text(spec, goal_unit, None)
        # The verdict goes on the scenario's last row: the paced one, where p99 is judged.
        verdict = paced or closed
        verdict["met"], verdict["missed"] = evaluate(spec, closed, paced)
        for server in REFERENCES:
            runs = rounds.get((name, server))
            if not runs:
                continue
            r = _median_round(runs)
            figure = r["items_per_second"] if bulk else r["requests_per_second"]
            row = _empty_row("  " + phase_label(r | {"round": None}, len(runs)), "")
            row.update(
                {
                    "phase": "max",
                    "server": server,
                    "figure": figure,
                    "unit": unit,
                    "p50_ms": r["p50_ms"],
                    "p95_ms": r["p95_ms"],
                    "p99_ms": r["p99_ms"],
                    "mean_ms": r["mean_ms"],
                    "errors": r["errors"],
                }
            )
            rows.append(row)
    for name, why in skipped.items():
        rows.append(_empty_row(SCENARIOS[name]["label"], why))
    if lag is not None:
        recovered = lag["recovered_after_seconds"]
        row = _empty_row(
            f"relay+projector lag after {lag['after']}",
            f"lag < 1 s within {LAG_RECOVERY_GOAL_SECONDS:.0f} s",
        )
        row.update(
            {
                "figure": recovered,
                "unit": "s to < 1 s",
                "met": recovered is not None and recovered <= LAG_RECOVERY_GOAL_SECONDS,
            }
        )
        rows.append(row)
    return rows


def _figure(r: dict) -> float:
    return r["items_per_second"] if r["name"] in BULK else r["requests_per_second"]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _median_round(runs: list[dict]) -> dict:
    """The round whose figure is the median (the lower middle one of an even count)."""
    ordered = sorted(runs, key=_figure)
    return ordered[(len(ordered) - 1) // 2]


def reference_ratios(name: str, rounds: dict) -> dict[str, float]:
    """server -> the median over rounds of (the product's figure / the server's figure), each
    round's pair measured one after the other."""
    product = {r["round"]: _figure(r) for r in rounds.get((name, "product"), ())}
    out = {}
    for server in REFERENCES:
        pairs = [
            product[r["round"]] / _figure(r)
            for r in rounds.get((name, server), ())
            if r["round"] in product and _figure(r)
        ]
        if pairs:
            out[server] = _median(pairs)
    return out


def rounds_table(results: list[dict]) -> str:
    """A line per scenario and round: each server's figure and the product's ratio to each."""
    by_round: dict[tuple[str, int], dict[str, dict]] = {}
    for r in results:
        if r["phase"] == "max" and r.get("round"):
            by_round.setdefault((r["name"], r["round"]), {})[r.get("server", "product")] = r
    lines = []
    for (name, round_), servers in by_round.items():
        product = servers.get("product")
        cells = [SCENARIOS[name]["label"], str(round_)]
        for server in ("product", *REFERENCES):
            r = servers.get(server)
            cells += [_fmt(_figure(r) if r else None, ",.0f"), _fmt(r and r["p99_ms"], ".1f")]
        for server in REFERENCES:
            r = servers.get(server)
            ratio = _figure(product) / _figure(r) if product and r and _figure(r) else None
            cells.append(_fmt(ratio, ".2f"))
        lines.append((*cells, ""))
    header = ("scenario (max phase, req/s)", "round", "product", "p99 ms")
    for server in REFERENCES:
        header += (server, "p99 ms")
    header += (*(f"product / {server}" for server in REFERENCES), "")
    return _table(header, lines)


def _met_text(row: dict) -> str:
    missed = ", ".join(row.get("missed") or ())
    if row["met"] is None:
        return f"- ({missed})" if missed else ""
    if row["met"]:
        return "yes"
    return f"NO: {missed}" if missed else "NO"


def _late_text(phase: dict) -> str:
    """Late starts of a paced phase (a result or its row), with the slots never sent."""
    if phase.get("late_starts") is None:
        return "-"
    text = f"{phase['late_starts']:,}"
    if phase["sent"]:
        text += f" ({phase['late_starts'] / phase['sent']:.0%})"
    if phase["unsent"]:
        text += f" +{phase['unsent']:,} unsent"
    return text


def results_table(rows: list[dict]) -> str:
    header = ("scenario", "figure", "unit", "p50 ms", "p95 ms", "p99 ms", "service p99 ms")
    header += (f"late > {LATE_START_MS:.0f} ms", "errors", "ratio to limit")
    header += ("ratio to floor", "ratio to peer", "target", "met?")
    lines = []
    for r in rows:
        figure = r["figure"]
        if r["unit"].startswith("s to"):
            figure_text = _fmt(figure, ".1f") if figure is not None else "never"
        else:
            figure_text = _fmt(figure, ",.0f")
        lines.append(
            (
                r["scenario"],
                figure_text,
                r["unit"],
                _fmt(r["p50_ms"], ".1f"),
                _fmt(r["p95_ms"], ".1f"),
                _fmt(r["p99_ms"], ".1f"),
                _fmt(r.get("service_p99_ms"), ".1f"),
                _late_text(r),
                _fmt(r["errors"], ",")
                + (f" +{r['item_failures']:,} items" if r.get("item_failures") else ""),
                _fmt(r["ratio"], ".2f"),
                _fmt(r.get("vs_floor"), ".2f"),
                _fmt(r.get("vs_peer"), ".2f"),
                r["goal"],
                _met_text(r),
            )
        )
    return _table(header, lines)


def cpu_table(results: list[dict]) -> str:
    columns = ["client", "gunicorn", "floor", "peer", "postgres", "redis", "rabbitmq", "relay"]
    columns.append("projector")
    if any("collector" in (r.get("cores") or {}) for r in results):
        columns.append("collector")
    lines = []
    for r in results:
        cores = r.get("cores") or {}
        lines.append(
            (
                phase_label(r),
                *(_fmt(cores.get(c), ".2f") for c in columns),
                _fmt(cores.get("other"), ".2f"),
                _fmt(cores.get("machine"), ".2f"),
                _fmt(r.get("load_before"), ".2f"),
                "",
            )
        )
    header = ("CPU cores busy in the window", *columns, "other", "machine", "load before", "")
    return _table(header, lines)


def lag_table(samples: list[dict]) -> str:
    def readyz(s: dict) -> str:
        if "readyz_error" in s:
            return s["readyz_error"][:40]
        if s["readyz_outbox_seconds"] is None:  # no details: the metrics token was refused
            return f"{s['readyz_status']} in {s['readyz_ms']:,.0f} ms (no details)"
        return (
            f"{s['readyz_status']} in {s['readyz_ms']:,.0f} ms: "
            f"{s['readyz_outbox_seconds']:.2f} / {s['readyz_projection_seconds']:.2f}"
        )

    lines = [
        (
            f"+{s['t']:.1f} s",
            _fmt(s["outbox_pending"], ","),
            _fmt(s["outbox_seconds"], ".2f"),
            _fmt(s["projection_events"], ","),
            _fmt(s["projection_seconds"], ".2f"),
            readyz(s),
            "",
        )
        for s in samples
    ]
    header = ("after load stopped", "outbox pending", "outbox lag s")
    header += ("projection behind", "projection lag s", "/readyz: outbox / projection lag s", "")
    return _table(header, lines)


def start_references(args, database: str) -> dict[str, tuple[Stack, str]]:
    """The reference servers (issue 15), under the product's gunicorn settings: the floor on
    a copy of the seeded database (its writes leave the product's chains alone; dropped at
    the end), the peer on its own database, created, migrated and seeded by bench.peer.seed.
    Returns name -> (server, API token)."""
    from django.db import connection

    from bench import seed as seeding

    url = seeding.database_url().rsplit("/", 1)[0]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "TEST_"))}
    base |= {"PYTHONUNBUFFERED": "1", "SECRET_KEY": secrets.token_urlsafe(50)}
    servers = {}
    for name in args.references:
        if name == "floor":
            connection.close()
            _admin_sql(f'DROP DATABASE IF EXISTS "{database}_floor"')
            _admin_sql(f'CREATE DATABASE "{database}_floor" TEMPLATE "{database}"')
            env = base | {
                "DJANGO_SETTINGS_MODULE": "bench.floor.settings",
                "DATABASE_URL": f"{url}/{database}_floor",
            }
            token = "none"
        else:
            env = base | {
                "DJANGO_SETTINGS_MODULE": "bench.peer.settings",
                "DATABASE_URL": f"{url}/{database.replace('_http', '')}_peer",
            }
            out = subprocess.run(
                [sys.executable, "-m", "bench.peer.seed"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            if out.returncode:
                raise RuntimeError(f"bench.peer.seed failed:\n{out.stderr[-2000:]}")
            *notes, token = out.stdout.strip().splitlines()
            print(f"  peer: {env['DATABASE_URL'].rsplit('/', 1)[1]} {' '.join(notes)}", flush=True)
        server = Stack(args, env, name=name, app=REFERENCES[name])
        servers[name] = (server, token)
        server.start_web()
        print(f"  {name}: {REFERENCES[name]} on {server.base_url}", flush=True)
    return servers


def run_rounds(name, args, stack, token, meter, references, results) -> dict:
    """The closed-loop phase of a compared scenario, --rounds times, the product then each
    reference server in each round. Returns the product's median round."""
    runs = []
    for round_ in range(1, args.rounds + 1):
        for server in ("product", *(r for r in references if name in ANSWERS[r])):
            where, key = (stack, token) if server == "product" else references[server]
            r = run_scenario(name, args, where, key, meter, server=server, round_=round_)
            results.append(r)
            print(f"  round {round_}, {server}:", phase_summary(r).strip(), flush=True)
            if server == "product":
                runs.append(r)
            time.sleep(PHASE_PAUSE_SECONDS)
    return _median_round(runs)


def machine_facts(stack: Stack | None) -> dict:
    import aiohttp
    import django
    import gunicorn

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
        cursor.execute("SHOW synchronous_commit")
        sync = cursor.fetchone()[0]
    connection.close()
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    redis_version = client.info("server").get("redis_version")
    client.close()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "postgresql": pg,
        "synchronous_commit": sync,
        "redis": redis_version,
        "python": platform.python_version(),
        "django": django.get_version(),
        "gunicorn": gunicorn.__version__,
        "aiohttp": aiohttp.__version__,
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["generate"]:
        generate_main(argv[1])
        return 0
    if argv[:1] == ["projector"]:
        interval = float(argv[argv.index("--interval") + 1]) if "--interval" in argv else 0.1
        projector_main(interval)
        return 0

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="uncounted seconds first")
    parser.add_argument(
        "--scenarios",
        default="floor,read,history,patch,adjust,bulk-own,bulk",
        help="comma-separated",
    )
    parser.add_argument(
        "--references",
        default="floor,peer",
        help="reference servers measured beside the product in the scenarios they answer "
        "(floor: floor, read, patch, adjust, bulk-own, bulk; peer: the first four): floor "
        "(bench/floor), peer (bench/peer), or none",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="closed-loop rounds of each compared scenario, the servers in turn in each; the "
        "ratios are the medians of the per-round ratios",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="make bench-quick: read, adjust and bulk-own, 2 s + 5 s, one round, no paced "
        "phases, no pgbench, no lag sampling, no cache warming (~1-2 minutes); later options win",
    )
    parser.add_argument(
        "--paced-rate",
        default="",
        metavar="NAME=RATE,...",
        help="requests/s of a scenario's paced phase (bulk: requests of --bulk-items items); "
        "default: its rate goal, else half its closed-loop throughput",
    )
    parser.add_argument(
        "--no-paced", action="store_true", help="closed-loop phases only (no p99 verdicts)"
    )
    # The defaults are config/gunicorn.py's: a worker per core, 4 threads each.
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--worker-class", default="gthread", help="gunicorn: sync or gthread")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--bulk-items", type=int, default=1000)
    parser.add_argument("--pgbench-seconds", type=float, default=15.0)
    parser.add_argument(
        "--batch-clients",
        default="",
        help="extra client counts to try for batch.sql (the best is the limit)",
    )
    parser.add_argument("--skip-pgbench", action="store_true")
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument(
        "--relay-interval",
        type=float,
        default=0.05,
        help="manage.py relay_outbox --interval: its sleep when nothing is pending",
    )
    parser.add_argument(
        "--projector-interval",
        type=float,
        default=0.5,
        help="seconds between projector runs (beat: PROJECTOR_INTERVAL_SECONDS, 1 s)",
    )
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--cold-cache",
        action="store_true",
        help="skip reading every order once before the read scenario",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="OpenTelemetry on in gunicorn, the relay and the projector, every trace sampled "
        "and exported over OTLP to a local receiver that discards it (make bench-tracing)",
    )
    if "--quick" in argv:
        quick = ["--scenarios", "read,adjust,bulk-own", "--warmup", "2", "--duration", "5"]
        quick += ["--rounds", "1", "--no-paced", "--skip-pgbench", "--lag-seconds", "0"]
        quick += ["--cold-cache"]
        argv = [*quick, *argv]
    args = parser.parse_args(argv)
    args.references = [r for r in args.references.split(",") if r and r != "none"]
    if any(r not in REFERENCES for r in args.references):
        parser.error(f"--references: choose among {', '.join(REFERENCES)}, or none")
    args.batch_clients = [int(c) for c in args.batch_clients.split(",") if c]
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    args.lag_after = next((n for n in reversed(names) if n in WRITES), None)
    args.paced_rates = {}
    for item in filter(None, args.paced_rate.split(",")):
        name, _, rate = item.partition("=")
        try:
            args.paced_rates[name.strip()] = float(rate)
        except ValueError:
            parser.error(f"--paced-rate: {item!r} is not NAME=RATE")
    bad = [n for n, rate in args.paced_rates.items() if n not in SCENARIOS or rate <= 0]
    if bad:
        parser.error(f"--paced-rate: unknown scenario or rate <= 0: {', '.join(bad)}")

    from scripts.check_services import missing_services

    problems = missing_services()
    if problems:
        for problem in problems:
            print(f"ERROR: {problem}", file=sys.stderr)
        return 1

    from bench import seed as seeding

    seeding.configure()
    os.environ["BENCH_EVENT_EXCHANGE"] = EXCHANGE
    os.environ["BENCH_EVENT_BUS_URL"] = args.amqp_url
    import django

    django.setup()

    print("seeding the benchmark database ...", flush=True)
    database = seeding.ensure_database()
    seeded = seeding.seed()
    token = seeding.token_for()
    print(
        f"  {database}: {seeded['orders']:,} orders, {seeded['ledger_rows']:,} ledger rows, "
        f"history orders {seeded['history_orders']} x {seeded['history_entries_per_order']:,} "
        f"entries ({seeded['seconds']:.1f} s)",
        flush=True,
    )
    facts = machine_facts(None)
    print(
        f"machine: nproc={facts['nproc']} ({facts['cpu']}), {facts['memory_gib']} GiB, "
        f"PostgreSQL {facts['postgresql']} (synchronous_commit={facts['synchronous_commit']}), "
        f"Redis {facts['redis']}, Python {facts['python']}, Django {facts['django']}, "
        f"gunicorn {facts['gunicorn']}, aiohttp {facts['aiohttp']}, "
        f"load average {facts['load_average'][0]:.2f}",
        flush=True,
    )

    limits = None
    if not args.skip_pgbench:
        print(
            f"pgbench on a copy of {database}: {args.clients} clients, "
            f"{args.pgbench_seconds:.0f} s per script ...",
            flush=True,
        )
        limits = pgbench_limits(args, database)

    from bench.relay import BenchQueue

    queue = BenchQueue()  # the exchange's own queue, so events are really routed and stored
    env = production_env(args, seeding.database_url())
    stack = Stack(args, env)
    stack.lag_samples = []
    results, skipped = [], {}
    compared = [n for n in names if any(n in ANSWERS[r] for r in args.references)]
    references: dict[str, tuple[Stack, str]] = {}  # name -> (server, token)
    clear_redis_keys()
    try:
        if compared:
            references = start_references(args, database)
        if args.tracing:
            env.update({**TRACING_ENV, **{k: v for k, v in env.items() if k in TRACING_ENV}})
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = stack.start_collector()
        stack.start_web()
        server = (
            f"gunicorn {args.workers} x {args.worker_class}"
            + (f" x {args.threads} threads" if args.threads > 1 else "")
            + f" on {stack.base_url}, config.settings.production"
            + (", config/gunicorn.py" if (ROOT / "config" / "gunicorn.py").exists() else "")
        )
        print(server, flush=True)
        meter = CpuMeter({"gunicorn": stack.pgid("gunicorn")})
        for ref, (ref_stack, _) in references.items():
            meter.groups[ref] = ref_stack.pgid(ref)
        if args.tracing:
            meter.groups["collector"] = stack.pgid("collector")
            print(f"tracing: on, {env['OTEL_EXPORTER_OTLP_ENDPOINT']}", flush=True)
        for name in names:
            if name in WRITES and "relay" not in stack.procs:
                stack.start_workers()
                meter.groups.update(
                    {"relay": stack.pgid("relay"), "projector": stack.pgid("projector")}
                )
                time.sleep(1.0)
            if name in BULK:
                available, why = bulk_available(stack.base_url, token)
                if not available:
                    print(f"{name}: {why}", flush=True)
                    skipped[name] = why
                    if args.lag_after == name:
                        args.lag_after = None
                    continue
            if name == "read" and not args.cold_cache:
                warmed = warm_cache(args, stack, token)
                print(
                    f"cache: read every order once in {warmed['seconds']:.1f} s "
                    f"{dict(warmed['statuses'])}",
                    flush=True,
                )
            clients = bulk_own_clients(args) if name == "bulk-own" else args.clients
            print(
                f"{name}, max throughput: {clients} closed-loop clients, "
                f"{args.warmup:.0f} s warm-up + {args.duration:.0f} s ...",
                flush=True,
            )
            if name in compared:
                closed = run_rounds(name, args, stack, token, meter, references, results)
            else:
                closed = run_scenario(name, args, stack, token, meter)
                results.append(closed)
                print(phase_summary(closed), flush=True)
            rate = paced_rate(name, closed, args)
            if rate:
                time.sleep(PHASE_PAUSE_SECONDS)
                print(
                    f"{name}, paced: {_rate_text(rate)} req/s over {clients} clients, "
                    f"{args.warmup:.0f} s warm-up + {args.duration:.0f} s ...",
                    flush=True,
                )
                paced = run_scenario(name, args, stack, token, meter, rate)
                results.append(paced)
                print(phase_summary(paced), flush=True)
            elif not args.no_paced:
                print(f"{name}: no paced phase (the closed loop answered nothing)", flush=True)
            if name == args.lag_after and args.lag_seconds > 0:
                stack.lag_samples = sample_lag(stack.base_url, args.lag_seconds)
        lag = None
        wrote = any(r["name"] in WRITES for r in results)
        if not stack.lag_samples and wrote and args.lag_seconds > 0:
            # The lag scenario was skipped (no bulk endpoint): sample after the last write.
            args.lag_after = [r["name"] for r in results if r["name"] in WRITES][-1]
            stack.lag_samples = sample_lag(stack.base_url, args.lag_seconds)
        if stack.lag_samples:
            lag = {
                "after": args.lag_after,
                "samples": stack.lag_samples,
                "recovered_after_seconds": lag_recovery(stack.lag_samples),
            }
    finally:
        stack.stop()
        for ref_stack, _ in references.values():
            ref_stack.stop()
        if "floor" in references:
            _admin_sql(f'DROP DATABASE IF EXISTS "{database}_floor"')
        queue.delete()
        clear_redis_keys()
    exported = None
    if args.tracing:
        exported = (stack.logs / "collector.log").read_text().strip().splitlines()[-1]
        print(f"tracing: the receiver {exported}")

    rows = build_rows(limits, results, skipped, lag)
    table = results_table(rows)
    cpu = cpu_table(results)
    per_round = rounds_table(results) if references else None
    print()
    print(table)
    if per_round:
        print()
        print(per_round)
    print()
    print(cpu)
    busy = [(phase_label(r), r["cores"].get("other", 0.0)) for r in results if r.get("cores")]
    if limits:
        busy += [
            (f"pgbench {run['script']} x{run['clients']}", run["cores"].get("other", 0.0))
            for run in [limits["single"], *limits["batch_runs"]]
        ]
    noisy = [f"{name} ({other:.2f} cores)" for name, other in busy if other > 0.2]
    product_max: dict[str, list[dict]] = {}
    for r in results:
        if r["phase"] == "max" and r.get("server", "product") == "product":
            product_max.setdefault(r["name"], []).append(r)
    closed_rates = {
        name: _median_round(runs)["requests_per_second"] for name, runs in product_max.items()
    }
    behind = [
        f"{phase_label(r)}: {_late_text(r)} late, closed loop "
        f"{_rate_text(closed_rates[r['name']])} req/s, generator "
        f"{_fmt(r['cores'].get('client'), '.2f')} cores"
        for r in results
        if r["phase"] == "paced" and (r["late_starts"] > 0.01 * r["sent"] or r["unsent"])
    ]
    if behind:
        print(
            f"\nNOTE: in these paced phases more than 1% of the requests started over "
            f"{LATE_START_MS:.0f} ms after their due time, or never (unsent): all "
            f"{args.clients} clients were waiting for answers, or the generator lacked CPU. The "
            "schedule was not kept, so the rate answered is client-limited; latency counts from "
            "the due time and includes the wait. Where the closed loop answered less than the "
            "paced rate, the server could not keep it either."
        )
        print("\n".join(f"  {line}" for line in behind))
    if noisy:
        print(
            "\nWARNING: other processes used more than 10% of the machine during: "
            + ", ".join(noisy)
            + ". Those figures are low; rerun on a quiet machine."
        )
    if lag:
        print()
        drain = [r["drain_seconds"] for r in results if r["name"] == lag["after"]][-1]
        print(
            f"lag after the {lag['after']} load stopped (its last request answered, "
            f"{drain:.1f} s after the clients stopped sending), every 0.5 s:"
        )
        print(lag_table(lag["samples"]))
    command = "make bench" + (f" BENCH_ARGS='{' '.join(argv)}'" if argv else "")
    summary = {
        "when": datetime.now(UTC).isoformat(),
        "command": command,
        "argv": argv,
        "machine": facts,
        "server": server,
        "tracing": (
            {"env": {k: v for k, v in env.items() if k.startswith("OTEL_")}, "exported": exported}
            if args.tracing
            else None
        ),
        "database": database,
        "seed": seeded,
        "limits": limits,
        "scenarios": results,
        "skipped": skipped,
        "lag": lag,
        "rows": rows,
        "table": table,
        "rounds_table": per_round,
        "cpu_table": cpu,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
