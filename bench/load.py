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
   measured window) through the scenarios: order reads, first history page of the
   10,000-entry orders, PATCH (absolute quantity), POST adjust (delta), bulk adjustments
   (1,000 items per request; skipped, with a row saying so, where the endpoint is missing);
5. after the last write scenario, sample /readyz every 0.5 s and report when the outbox and
   projection lag fell back under 1 s;
6. stop everything it started and leave the shared services as they were.

Every write figure is also printed as a ratio to its pgbench limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
BULK_PATH = "/api/v1/adjustments/bulk/"
EXCHANGE = "ordertrack-bench-http.events"
REDIS_DB = 11
CACHE_PREFIX = "ordertrack-bench-http"
LAG_GOAL_SECONDS = 1.0
LAG_RECOVERY_GOAL_SECONDS = 5.0

# name -> what it is, what it must reach (issue #"make bench"), which pgbench limit it is
# compared with.
SCENARIOS = {
    "read": {"label": "order read GET /orders/{id}/", "rate_goal": 2000, "p99_goal": 20},
    "history": {"label": "history page 1 (10k entries)", "rate_goal": None, "p99_goal": 30},
    "patch": {
        "label": "adjust: PATCH /orders/{id}/",
        "rate_goal": 800,
        "p99_goal": 100,
        "limit": "single",
    },
    "adjust": {
        "label": "adjust: POST /orders/{id}/adjust/",
        "rate_goal": 800,
        "p99_goal": 100,
        "limit": "single",
    },
    "bulk": {
        "label": "bulk POST /adjustments/bulk/",
        "rate_goal": 25000,
        "p99_goal": None,
        "limit": "batch",
        "ratio_goal": 0.35,
    },
}
WRITES = ("patch", "adjust", "bulk")


# --- the load generator (a process of its own; imports nothing from the project) -------


def _request_builder(cfg: dict):
    """scenario -> a function rng -> (method, path, body or None, items)."""
    import orjson

    orders, lines, untracked = cfg["orders"], cfg["lines_per_order"], cfg["untracked"]
    scenario = cfg["scenario"]

    def sku(order_id: int, k: int) -> str:  # bench.seed.order_skus, without Django
        return f"BENCH-U-{(order_id * 3 + k) % untracked:03d}"

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
    raise ValueError(f"unknown scenario {scenario!r}")


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def _generate(cfg: dict) -> dict:
    import aiohttp
    import orjson

    build = _request_builder(cfg)
    bulk = cfg["scenario"] == "bulk"
    clients, base = cfg["clients"], cfg["base_url"]
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
    samples: list[tuple[int, int, int, int, str | None, int]] = []
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

    async def client(session, n: int) -> None:
        rng = random.Random(cfg["seed"] * 1000 + n)
        while time.perf_counter_ns() < window_end:
            method, path, body, items = build(rng)
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
            samples.append((t0, t1, status, items, cache, failed))
            if status == 0:
                await asyncio.sleep(0.01)

    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout, skip_auto_headers=["User-Agent"]
    ) as session:
        marker = asyncio.create_task(marks())
        await asyncio.gather(*(client(session, n) for n in range(clients)))
        await marker

    # Throughput: the answers that arrived within the window. Latency and errors: every
    # request sent within the window, however late its answer came (the clients stop
    # sending at the window's end, but every request in flight is waited for), so that
    # slow answers are not censored when latency approaches the window's length.
    window = [s for s in samples if window_start <= s[1] < window_end]
    sent = [s for s in samples if window_start <= s[0] < window_end]
    seconds = (window_end - window_start) / 1e9
    ok = [s for s in window if 200 <= s[2] < 300]
    latencies = sorted((s[1] - s[0]) / 1e6 for s in sent if 200 <= s[2] < 300)
    statuses = Counter(str(s[2]) for s in sent)
    return {
        "scenario": cfg["scenario"],
        "clients": clients,
        "warmup_seconds": cfg["warmup"],
        "seconds": seconds,
        "requests": len(window),
        "ok": len(ok),
        "sent": len(sent),
        "errors": sum(1 for s in sent if not 200 <= s[2] < 300),
        "statuses": dict(statuses),
        "failures": dict(failures),
        "requests_per_second": len(ok) / seconds,
        "items_per_second": sum(s[3] for s in ok) / seconds,
        "items_per_request": cfg["bulk_items"] if bulk else 1,
        "item_failures": sum(s[5] for s in sent),
        "p50_ms": _percentile(latencies, 0.50),
        "p95_ms": _percentile(latencies, 0.95),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else None,
        "mean_ms": sum(latencies) / len(latencies) if latencies else None,
        "x_cache": dict(Counter(s[4] for s in ok if s[4])),
        "warmup_requests": sum(1 for s in samples if s[1] < window_start),
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

    from history.projector import projections_run

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        started = time.monotonic()
        projections_run()
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    connection.close()


# --- the orchestrator -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
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
    """gunicorn, the relay and the projector, each in a process group of its own."""

    def __init__(self, args, env: dict[str, str]):
        self.args, self.env = args, env
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
            "config.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.args.workers),
            "--worker-class", self.args.worker_class,
            "--threads", str(self.args.threads),
            "--backlog", "2048",
            "--log-level", "warning",
        ]  # fmt: skip
        return argv

    def start_web(self) -> None:
        self._start("gunicorn", self.gunicorn_argv())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.procs["gunicorn"].poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.logs / 'gunicorn.log'}")
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
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
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
        "clients": args.clients,
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


def run_scenario(name: str, args, stack: Stack, token: str, meter: CpuMeter) -> dict:
    cfg = generator_config(name, args, stack, token)
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
    if name in WRITES and args.lag_after == name:
        stack.lag_samples = sample_lag(stack.base_url, args.lag_seconds)
    result.update(
        {"name": name, "cores": cores, "load_before": load, "drain_seconds": round(drained, 2)}
    )
    return result


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
            status, body = _get_json(base_url + "/readyz", timeout=seconds + 10)
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


def _goal_text(spec: dict, unit: str) -> str:
    parts = []
    if spec.get("rate_goal"):
        parts.append(f">= {spec['rate_goal']:,} {unit}")
    if spec.get("p99_goal"):
        parts.append(f"p99 < {spec['p99_goal']} ms")
    if spec.get("ratio_goal"):
        parts.append(f">= {spec['ratio_goal']:.0%} of limit")
    return ", ".join(parts)


def evaluate(row: dict, spec: dict) -> bool:
    met = row["errors"] == 0 and not row.get("item_failures")
    if spec.get("rate_goal"):
        met = met and row["figure"] >= spec["rate_goal"]
    if spec.get("p99_goal"):
        met = met and row["p99_ms"] is not None and row["p99_ms"] < spec["p99_goal"]
    if spec.get("ratio_goal"):
        met = met and (row.get("ratio") or 0) >= spec["ratio_goal"]
    return met


def build_rows(limits: dict | None, results: list[dict], skipped: dict, lag: dict | None):
    rows = []
    if limits:
        single, batch = limits["single"], limits["batch"]
        rows.append(
            {
                "scenario": f"LIMIT pgbench single.sql x{single['clients']}",
                "figure": single["tps"],
                "unit": "writes/s",
                "p50_ms": None,
                "p95_ms": None,
                "p99_ms": None,
                "mean_ms": single["latency_avg_ms"],
                "errors": single["failed"],
                "ratio": None,
                "goal": "(the limit for single writes)",
                "met": None,
            }
        )
        rows.append(
            {
                "scenario": f"LIMIT pgbench batch.sql x{batch['clients']}",
                "figure": batch["rows_per_second"],
                "unit": "rows/s",
                "p50_ms": None,
                "p95_ms": None,
                "p99_ms": None,
                "mean_ms": batch["latency_avg_ms"],
                "errors": batch["failed"],
                "ratio": None,
                "goal": "(the limit for batched writes)",
                "met": None,
            }
        )
    for r in results:
        spec = SCENARIOS[r["name"]]
        bulk = r["name"] == "bulk"
        figure = r["items_per_second"] if bulk else r["requests_per_second"]
        limit = None
        if limits and spec.get("limit") == "single":
            limit = limits["single"]["tps"]
        elif limits and spec.get("limit") == "batch":
            limit = limits["batch"]["rows_per_second"]
        row = {
            "scenario": spec["label"],
            "figure": figure,
            "unit": "items/s" if bulk else "req/s",
            "p50_ms": r["p50_ms"],
            "p95_ms": r["p95_ms"],
            "p99_ms": r["p99_ms"],
            "mean_ms": r["mean_ms"],
            "errors": r["errors"],
            "item_failures": r.get("item_failures", 0),
            "ratio": figure / limit if limit else None,
            "goal": _goal_text(spec, "items/s" if bulk else "/s"),
        }
        row["met"] = evaluate(row, spec)
        rows.append(row)
    for name, why in skipped.items():
        rows.append(
            {
                "scenario": SCENARIOS[name]["label"],
                "figure": None,
                "unit": "",
                "p50_ms": None,
                "p95_ms": None,
                "p99_ms": None,
                "mean_ms": None,
                "errors": None,
                "ratio": None,
                "goal": why,
                "met": None,
            }
        )
    if lag is not None:
        recovered = lag["recovered_after_seconds"]
        rows.append(
            {
                "scenario": f"relay+projector lag after {lag['after']}",
                "figure": recovered,
                "unit": "s to < 1 s",
                "p50_ms": None,
                "p95_ms": None,
                "p99_ms": None,
                "mean_ms": None,
                "errors": None,
                "ratio": None,
                "goal": f"lag < 1 s within {LAG_RECOVERY_GOAL_SECONDS:.0f} s",
                "met": recovered is not None and recovered <= LAG_RECOVERY_GOAL_SECONDS,
            }
        )
    return rows


def results_table(rows: list[dict]) -> str:
    header = ("scenario", "figure", "unit", "p50 ms", "p95 ms", "p99 ms", "errors")
    header += ("ratio to limit", "target", "met?")
    lines = []
    for r in rows:
        figure = r["figure"]
        if r["unit"].startswith("s to"):
            figure_text = _fmt(figure, ".1f") if figure is not None else "never"
        else:
            figure_text = _fmt(figure, ",.0f")
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        lines.append(
            (
                r["scenario"],
                figure_text,
                r["unit"],
                _fmt(r["p50_ms"], ".1f"),
                _fmt(r["p95_ms"], ".1f"),
                _fmt(r["p99_ms"], ".1f"),
                _fmt(r["errors"], ",")
                + (f" +{r['item_failures']:,} items" if r.get("item_failures") else ""),
                _fmt(r["ratio"], ".2f"),
                r["goal"],
                met,
            )
        )
    return _table(header, lines)


def cpu_table(results: list[dict]) -> str:
    columns = ["client", "gunicorn", "postgres", "redis", "rabbitmq", "relay", "projector"]
    lines = []
    for r in results:
        cores = r.get("cores") or {}
        lines.append(
            (
                SCENARIOS[r["name"]]["label"],
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
        "--scenarios", default="read,history,patch,adjust,bulk", help="comma-separated"
    )
    parser.add_argument("--workers", type=int, default=2 * len(os.sched_getaffinity(0)))
    parser.add_argument("--worker-class", default="sync", help="gunicorn: sync or gthread")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker")
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
    args = parser.parse_args(argv)
    args.batch_clients = [int(c) for c in args.batch_clients.split(",") if c]
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    args.lag_after = next((n for n in reversed(names) if n in WRITES), None)

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
    clear_redis_keys()
    try:
        stack.start_web()
        server = (
            f"gunicorn {args.workers} x {args.worker_class}"
            + (f" x {args.threads} threads" if args.threads > 1 else "")
            + f" on {stack.base_url}, config.settings.production"
            + (", config/gunicorn.py" if (ROOT / "config" / "gunicorn.py").exists() else "")
        )
        print(server, flush=True)
        meter = CpuMeter({"gunicorn": stack.pgid("gunicorn")})
        for name in names:
            if name in WRITES and "relay" not in stack.procs:
                stack.start_workers()
                meter.groups.update(
                    {"relay": stack.pgid("relay"), "projector": stack.pgid("projector")}
                )
                time.sleep(1.0)
            if name == "bulk":
                available, why = bulk_available(stack.base_url, token)
                if not available:
                    print(f"{name}: {why}", flush=True)
                    skipped[name] = why
                    if args.lag_after == "bulk":
                        args.lag_after = None
                    continue
            if name == "read" and not args.cold_cache:
                warmed = warm_cache(args, stack, token)
                print(
                    f"cache: read every order once in {warmed['seconds']:.1f} s "
                    f"{dict(warmed['statuses'])}",
                    flush=True,
                )
            print(
                f"{name}: {args.clients} clients, {args.warmup:.0f} s warm-up + "
                f"{args.duration:.0f} s ...",
                flush=True,
            )
            result = run_scenario(name, args, stack, token, meter)
            results.append(result)
            print(
                f"  {result['requests_per_second']:,.0f} req/s"
                + (f" ({result['items_per_second']:,.0f} items/s)" if name == "bulk" else "")
                + f", p50 {_fmt(result['p50_ms'], '.1f')} ms, p99 {_fmt(result['p99_ms'], '.1f')}"
                f" ms, errors {result['errors']} {result['statuses']}"
                + (f", X-Cache {result['x_cache']}" if result["x_cache"] else "")
                + (f", failed items {result['item_failures']:,}" if name == "bulk" else "")
                + ", in flight answered "
                f"{result['drain_seconds']:.1f} s after the clients stopped",
                flush=True,
            )
        lag = None
        if not stack.lag_samples and any(r["name"] in WRITES for r in results):
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
        queue.delete()
        clear_redis_keys()

    rows = build_rows(limits, results, skipped, lag)
    table = results_table(rows)
    cpu = cpu_table(results)
    print()
    print(table)
    print()
    print(cpu)
    busy = [(r["name"], r["cores"].get("other", 0.0)) for r in results if r.get("cores")]
    if limits:
        busy += [
            (f"pgbench {run['script']} x{run['clients']}", run["cores"].get("other", 0.0))
            for run in [limits["single"], *limits["batch_runs"]]
        ]
    noisy = [f"{name} ({other:.2f} cores)" for name, other in busy if other > 0.2]
    if noisy:
        print(
            "\nWARNING: other processes used more than 10% of the machine during: "
            + ", ".join(noisy)
            + ". Those figures are low; rerun on a quiet machine."
        )
    if lag:
        print()
        drain = next(r["drain_seconds"] for r in results if r["name"] == lag["after"])
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
        "database": database,
        "seed": seeded,
        "limits": limits,
        "scenarios": results,
        "skipped": skipped,
        "lag": lag,
        "rows": rows,
        "table": table,
        "cpu_table": cpu,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
