"""`make bench-profile`: what one request of a `make bench` scenario costs, without HTTP.

A profiling aid, not a benchmark of throughput: it seeds the benchmark database
(bench/seed.py), loads the WSGI application in this process with the production settings
`make bench` uses, sends the scenario's requests (bench/load.py builds them) straight to it,
and prints per request: wall time, this process's CPU time, the CPU time of the PostgreSQL
backend serving it (from /proc), and the statements sent. With --cprofile it also prints
where the CPU went (cProfile, CPU clock), which is how the hot paths were found; with
--py-spy, a flame graph of another pass, sampled by py-spy, in bench/results/.

    make bench-profile BENCH_ARGS='adjust --requests 2000 --cprofile'
    make bench-profile BENCH_ARGS='read --py-spy'
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from bench import load, seed


def _environ(method: str, path: str, body: bytes | None, token: str) -> dict:
    body = body or b""
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "HTTP_ACCEPT": "application/json",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
    }


def _self_time_by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """cProfile's self time summed by where the code lives: an installed package, a
    directory of this project, the standard library, or C builtins."""
    totals: Counter = Counter()
    root = str(Path(__file__).resolve().parent.parent) + os.sep
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        if "site-packages" + os.sep in filename:
            package = filename.split("site-packages" + os.sep, 1)[1].split(os.sep, 1)[0]
        elif filename.startswith(root):
            package = "ordertrack: " + filename[len(root) :].split(os.sep, 1)[0]
        elif filename.startswith(("~", "<")):
            package = "builtins"
        else:
            package = "standard library"
        totals[package] += tottime
    return totals.most_common(20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=[n for n in load.SCENARIOS if n != "floor"])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200, help="requests first, not counted")
    parser.add_argument("--bulk-items", type=int, default=1000)
    parser.add_argument("--cprofile", action="store_true", help="print where the CPU went")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--sort", default="cumulative", help="cProfile order: cumulative, or tottime (self)"
    )
    parser.add_argument(
        "--py-spy", action="store_true", help="write a py-spy flame graph to bench/results/"
    )
    parser.add_argument("--no-seed", action="store_true", help="reuse the database as it is")
    parser.add_argument(
        "--log-level",
        help="LOG_LEVEL of the application (make bench's WARNING unless given; INFO, the "
        "default elsewhere, writes a request_finished line a request to stderr)",
    )
    args = parser.parse_args(argv)

    if not args.no_seed:
        subprocess.run([sys.executable, "-m", "bench.seed"], check=True)
    # Entries left by an earlier run may carry newer versions than the seeded orders, and
    # the cache never lets an older version replace a newer one.
    load.clear_redis_keys()
    # Metrics samples of its own, away from those of a gunicorn that make bench may run.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-profile-")
    os.environ.update(
        load.production_env(
            SimpleNamespace(amqp_url="amqp://guest:guest@127.0.0.1:5672//"), seed.database_url()
        )
    )
    # One backend is measured: it must live through the whole run (a bulk run outlasts the
    # default CONN_MAX_AGE of 60 s, and its connection was replaced mid-run).
    os.environ["CONN_MAX_AGE"] = "86400"
    if args.log_level:
        os.environ["LOG_LEVEL"] = args.log_level
    import django

    django.setup()
    from django.db import connection

    from config.handlers import Application

    token = seed.token_for()
    app = Application()  # config.wsgi's, without its tracing setup
    build = load._request_builder(
        {
            "scenario": args.scenario,
            "orders": seed.ORDERS,
            "lines_per_order": seed.LINES_PER_ORDER,
            "untracked": seed.UNTRACKED,
            "history_orders": seed.history_order_ids(),
            "bulk_items": args.bulk_items,
        }
    )
    rng = random.Random(42)
    statuses: Counter = Counter()
    caches: Counter = Counter()

    def start_response(status, headers, exc_info=None):
        statuses[status.split()[0]] += 1
        caches.update(value for name, value in headers if name == "X-Cache")

    def send(count: int) -> None:
        for _ in range(count):
            method, path, body, _items = build(rng)
            response = app(_environ(method, path, body, token), start_response)
            b"".join(response)
            response.close()

    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    if args.scenario == "read":  # as make bench does: every order once, so reads hit
        for order_id in range(1, seed.ORDERS + 1):
            b"".join(
                app(_environ("GET", f"/api/v1/orders/{order_id}/", None, token), start_response)
            )
    send(args.warmup)
    statuses.clear()
    caches.clear()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    statements = 0
    backend_before = load._proc_stat(backend)[1]
    wall, cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(count):
        send(args.requests)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    backend_cpu = load._proc_stat(backend)[1] - backend_before
    n = args.requests
    print(
        f"{args.scenario}: {n:,} requests in-process ({os.environ['DJANGO_SETTINGS_MODULE']}, "
        f"{seed.database_url().rsplit('/', 1)[-1]}), after {args.warmup} not counted\n"
        f"  per request: wall {wall / n * 1e3:.2f} ms, Python CPU {cpu / n * 1e3:.2f} ms, "
        f"PostgreSQL backend CPU {backend_cpu / n * 1e3:.2f} ms, "
        f"{statements / n:.1f} statements (BEGIN and COMMIT not counted)\n"
        f"  statuses {dict(statuses)}" + (f", X-Cache {dict(caches)}" if caches else "")
    )
    if args.cprofile:
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        send(args.requests)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats(args.sort)
        stats.print_stats(args.top)
        print(f"  cProfile (CPU clock, {n:,} more requests; the profiler slows them down):")
        print(out.getvalue())
        print("  self time by package, per request (profiled):")
        for package, seconds in _self_time_by_package(stats):
            print(f"    {package:<28} {seconds / n * 1e3:7.3f} ms")
    if args.py_spy:
        svg = (
            load.RESULTS
            / f"profile-{args.scenario}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.svg"
        )
        load.RESULTS.mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen(
            [str(load.VENV_BIN / "py-spy"), "record", "--pid", str(os.getpid()), "--rate", "500",
             "--output", str(svg), "--nonblocking"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1)  # py-spy attaches
        send(args.requests)
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
        print(f"  py-spy flame graph of {n:,} more requests: {svg.relative_to(load.ROOT)}")
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
