PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every package is pinned, with its hashes, in requirements/*.txt (`make lock` writes them
# from pyproject.toml): base.txt (what runs), dev.txt (+ tests and tools), bench.txt (+ the
# load generator).
LOCK := requirements/dev.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha1sum | cut -c1-12)
PORT ?= 8000

.PHONY: install run test lint format clean lock

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	PORT=$(PORT) bin/run-dev

test: install
	$(BIN)/python scripts/check_services.py
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --durations=15

.PHONY: fuzz
# Schemathesis with a large random sample per operation (make test runs a small fixed one).
# FUZZ_EXAMPLES sets the sample size.
FUZZ_EXAMPLES ?= 200
fuzz: install
	$(BIN)/python scripts/check_services.py
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -n 2 tests/test_api_fuzz.py

.PHONY: traces
# An OTLP/HTTP receiver on 127.0.0.1:4318 that prints the traces it gets as trees (README,
# "Tracing"): set OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 where the product runs.
traces: install
	$(BIN)/python tools/trace_view.py $(TRACE_ARGS)

.PHONY: audit-kit
# The standalone export verifier as one file for an auditor (needs only Python 3.11).
audit-kit:
	python3 tools/build_audit_kit.py dist/verify_export.pyz

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# var/ holds the embedded PostgreSQL's data: stop the server first (if there is a venv to do it).
clean:
	-test ! -x $(BIN)/python || $(BIN)/python -m config.embedded_postgres stop
	rm -rf $(VENV) var

.PHONY: bench-relay
# The outbox relay against the broker's raw confirmed-publish rate (bench/README.md).
# Needs PostgreSQL and RabbitMQ on 127.0.0.1; BENCH_ARGS passes options, e.g. --skip-live.
bench-relay: install
	$(BIN)/python -m bench.relay $(BENCH_ARGS)

.PHONY: bench
# The HTTP API under load against PostgreSQL's raw limit for the same writes (bench/README.md):
# gunicorn with the production settings on PostgreSQL, Redis and RabbitMQ on 127.0.0.1, driven
# by an aiohttp load generator; pgbench for the limit. A benchmark, not a test: a few minutes,
# prints a table, writes bench/results/bench-<timestamp>.json. BENCH_ARGS passes options,
# e.g. BENCH_ARGS='--duration 5 --scenarios read,patch'.
BENCH_STAMP := $(VENV)/.bench-installed-$(shell cat pyproject.toml requirements/bench.txt | sha1sum | cut -c1-12)

$(BENCH_STAMP): $(STAMP) requirements/bench.txt
	$(BIN)/pip install --quiet --require-hashes -r requirements/bench.txt
	rm -f $(VENV)/.bench-installed-*
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.load $(BENCH_ARGS)

.PHONY: bench-quick
# About a minute, for before and after a change: read, adjust and bulk-own on the product, the
# floor and the peer (bench/floor, bench/peer), 2 s + 5 s each, one round; prints the ratios.
bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m bench.load --quick $(BENCH_ARGS)

.PHONY: bench-tracing
# What OpenTelemetry tracing costs: make bench's floor, read and adjust twice, tracing off
# then on (every trace exported to a local receiver that discards it); prints both and the
# ratio (bench/tracing.py).
bench-tracing: $(BENCH_STAMP)
	$(BIN)/python -m bench.tracing $(BENCH_ARGS)

.PHONY: bench-profile
# One scenario's requests sent in-process to the production WSGI app: per-request wall, CPU,
# PostgreSQL backend CPU and statements; --cprofile shows where the CPU goes (bench/profile.py).
# e.g. make bench-profile BENCH_ARGS='adjust --cprofile'
bench-profile: $(BENCH_STAMP)
	$(BIN)/python -m bench.profile $(BENCH_ARGS)

.PHONY: bench-audit
# What the tamper-evident ledger costs (bench/README.md): the chain on a write against a
# constant hash, sealing 100,000 rows, verify_ledger's checks, order_as_of on 10,000
# entries, the CSV export of 1,000,000 rows from gunicorn against COPY. ~10 minutes; its
# own database, ordertrack_bench_audit, emptied at the end. e.g. BENCH_ARGS='--keep'
bench-audit: $(BENCH_STAMP)
	$(BIN)/python -m bench.audit $(BENCH_ARGS)

.PHONY: bench-scale
# Do writes, history pages, as_of, the export, the relay claim and partition maintenance stay
# flat as the order ledger grows (bench/README.md)? Fills its own database,
# ordertrack_bench_scale, with COPY to 1, 10 and 30 million rows over 36 monthly partitions,
# measures in-process at each size, prints each figure's ratio to the first size's, writes
# bench/results/scale-<timestamp>.json and .png; drops the database at the end (--keep).
# e.g. BENCH_ARGS='--sizes 0.1,0.3' for a quick try.
bench-scale: $(BENCH_STAMP)
	$(BIN)/python -m bench.scale $(BENCH_ARGS)

# Pin every package again from pyproject.toml (after changing a dependency there).
COMPILE := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links
lock: install
	$(COMPILE) -o requirements/base.txt pyproject.toml
	$(COMPILE) --extra dev -o requirements/dev.txt pyproject.toml
	$(COMPILE) --extra dev --extra bench -o requirements/bench.txt pyproject.toml
