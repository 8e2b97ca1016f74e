"""What OpenTelemetry tracing costs: `make bench` twice in one session, tracing off then on.

    make bench-tracing                      # floor, read and adjust; see DEFAULT_ARGS
    make bench-tracing BENCH_ARGS='--duration 10'
    OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1 make bench-tracing

The second run turns tracing on in gunicorn, the relay and the projector, samples every
trace and exports it over OTLP/HTTP to a local receiver that throws it away (bench/load.py
--tracing), so the figures are the cost of making and exporting spans, not of a collector.
Both runs pace each scenario at the same rate, so their latencies compare at equal load,
and each run's floor (`GET /healthz`) is its reference. Prints the two runs side by side
with the ratio on/off, and writes bench/results/tracing-<timestamp>.json.
"""

import json
import re
import subprocess
import sys
from datetime import UTC, datetime

from bench.load import RESULTS, ROOT, _table

# Paced below capacity on the 2-core machine, so that latency is service time, not queueing.
DEFAULT_ARGS = [
    "--scenarios",
    "floor,read,adjust",
    "--skip-pgbench",
    "--paced-rate",
    "floor=300,read=300,adjust=100",
    "--lag-seconds",
    "3",
    "--references",
    "none",
]
FIGURES = [
    ("max", "requests_per_second", "req/s (64 clients)"),
    ("paced", "p50_ms", "p50 ms (paced)"),
    ("paced", "p99_ms", "p99 ms (paced)"),
]


def run(argv: list[str]) -> dict:
    """One `make bench` run; its JSON summary."""
    print(f"$ python -m bench.load {' '.join(argv)}", flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.load", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    written = None
    for line in proc.stdout:
        print(f"  {line}", end="", flush=True)
        match = re.match(r"wrote (bench/results/bench-\S+\.json)", line.strip())
        if match:
            written = ROOT / match[1]
    if proc.wait() != 0 or written is None:
        raise SystemExit(f"bench.load {' '.join(argv)} failed")
    return json.loads(written.read_text())


def _phase(summary: dict, name: str, phase: str) -> dict | None:
    return next(
        (r for r in summary["scenarios"] if r["name"] == name and r["phase"] == phase), None
    )


def _ratio(on: float | None, off: float | None) -> str:
    return f"{on / off:.2f}" if on and off else "-"


def compare(off: dict, on: dict) -> tuple[str, list[dict]]:
    names = list(dict.fromkeys(r["name"] for r in off["scenarios"]))
    rows, lines = [], []
    for name in names:
        for phase, key, label in FIGURES:
            before, after = _phase(off, name, phase), _phase(on, name, phase)
            a = before.get(key) if before else None
            b = after.get(key) if after else None
            rows.append({"scenario": name, "figure": label, "off": a, "on": b})
            lines.append(
                (
                    name,
                    label,
                    "-" if a is None else f"{a:,.1f}",
                    "-" if b is None else f"{b:,.1f}",
                    _ratio(b, a),
                )
            )
        cpu = [
            (r or {}).get("cores", {}).get("gunicorn")
            for r in (_phase(off, name, "max"), _phase(on, name, "max"))
        ]
        per_request = [
            c / r["requests_per_second"] * 1000 if c and r and r["requests_per_second"] else None
            for c, r in zip(cpu, (_phase(off, name, "max"), _phase(on, name, "max")), strict=True)
        ]
        rows.append(
            {"scenario": name, "figure": "gunicorn CPU ms/request", "off": per_request[0],
             "on": per_request[1]}
        )  # fmt: skip
        lines.append(
            (
                name,
                "gunicorn CPU ms/request (64 clients)",
                "-" if per_request[0] is None else f"{per_request[0]:.2f}",
                "-" if per_request[1] is None else f"{per_request[1]:.2f}",
                _ratio(per_request[1], per_request[0]),
            )
        )
    table = _table(("scenario", "figure", "tracing off", "tracing on", "on / off"), lines)
    return table, rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    common = DEFAULT_ARGS + argv
    off = run(common)
    on = run([*common, "--tracing"])
    table, rows = compare(off, on)
    print()
    print(f"tracing off: {off['when']}   tracing on: {on['when']}")
    print(table)
    if on.get("tracing"):
        settings = " ".join(f"{k}={v}" for k, v in sorted(on["tracing"]["env"].items()))
        print(f"tracing on: {settings}")
        print(f"tracing on: the receiver {on['tracing']['exported']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"tracing-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(
        json.dumps({"argv": common, "off": off["when"], "on": on["when"], "rows": rows,
                    "table": table}, indent=2) + "\n"
    )  # fmt: skip
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
