"""gunicorn settings: `gunicorn -c config/gunicorn.py config.wsgi`.

Everything is read from the environment:

| variable | default | |
| --- | --- | --- |
| `GUNICORN_BIND` | `0.0.0.0:$PORT` (`PORT` defaults to 8000) | |
| `WEB_CONCURRENCY` | CPUs | worker processes |
| `GUNICORN_THREADS` | 4 | threads per worker (above 1, the gthread worker, with keep-alive) |
| `GUNICORN_TIMEOUT` | 30 | seconds before a silent worker is killed and replaced |
| `GUNICORN_KEEPALIVE` | 5 | seconds a keep-alive connection waits for its next request |
| `GUNICORN_MAX_REQUESTS` | 0 (never) | recycle a worker after this many requests (plus jitter) |
| `GUNICORN_ACCESSLOG` | none | `-` logs requests to stdout |
| `PROMETHEUS_MULTIPROC_DIR` | unset | an empty directory shared by the workers |

With several workers, set PROMETHEUS_MULTIPROC_DIR to an empty directory: every worker then
writes its samples there and `/metrics` adds them all up (config/metrics.py). Without it,
each scrape sees only the worker that happened to answer it.
"""

import logging
import multiprocessing
import os

logger = logging.getLogger("gunicorn.error")

bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# A worker per core with 4 threads each: a request spends about half its time waiting on
# PostgreSQL or Redis, and threaded workers keep connections alive between requests. On 2
# cores `make bench` answered 1.4x the requests of 4 sync workers (bench/README.md).
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count())
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE") or 5)
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS") or 0)
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
# Each worker imports config.wsgi itself, after the fork, and so starts its own tracing SDK
# there (config.tracing: the exporter's thread and connection are the worker's own). Keep
# it so: a preloaded app would start them in the master.
preload_app = False


def _multiproc_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def on_starting(server) -> None:
    path = _multiproc_dir()
    if path is None:
        if server.cfg.workers > 1:
            logger.warning(
                "PROMETHEUS_MULTIPROC_DIR is not set: /metrics will show one worker at a time"
            )
        return
    os.makedirs(path, exist_ok=True)
    if any(name.endswith(".db") for name in os.listdir(path)):
        logger.warning(
            "PROMETHEUS_MULTIPROC_DIR %s is not empty: samples of earlier processes are "
            "counted too; empty it before starting the web and worker processes",
            path,
        )


def child_exit(server, worker) -> None:
    """A worker is gone: drop its live gauges, so /metrics stops reporting them. Its
    counters and histograms stay in the total, as prometheus_client intends."""
    if _multiproc_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
