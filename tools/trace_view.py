"""Print the traces the product exports, as trees, on one machine with no collector.

    .venv/bin/python tools/trace_view.py            # listens on 127.0.0.1:4318
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 make run

It is the OTLP/HTTP traces endpoint of a collector (protobuf, gzip or not) and nothing
more: spans are grouped by trace, and a trace is printed once no span of it has arrived for
--quiet seconds (6: the SDK exports every 5 s), again (whole) if more arrive later, as a
consumer's do. A span link is printed on both ends: the relay's batch span names the
traces it links to, and each of those traces says which relay span published it. Traces
with no request, publish or consume span (beat's relay and projector ticks on an idle
system) are left out unless --all is given.
"""

import argparse
import gzip
import signal
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

KIND = {
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}
STATEMENT_KEYS = ("db.statement", "db.query.text")


def _notable(span: Span) -> bool:
    """A request, a publish to the event exchange, or an event consumed: not beat's ticks
    (Celery's own spans are producer and consumer spans named apply_async/... and run/...)."""
    if span.kind == Span.SPAN_KIND_SERVER:
        return True
    return span.name.startswith(("publish ", "process "))


def _label(span: Span) -> str:
    for kv in span.attributes:
        if kv.key in STATEMENT_KEYS:
            text = " ".join(kv.value.string_value.split())
            return f"{span.name}: {text[:70]}{'...' if len(text) > 70 else ''}"
    return span.name


class Traces:
    """What has been received: spans by trace id (hex), each with its resource's attributes
    (service.name, service.version, ...), and the paths posted to."""

    def __init__(self):
        self.lock = threading.Lock()
        self.paths: set[str] = set()
        self.spans: dict[str, list[tuple[dict[str, str], Span]]] = defaultdict(list)
        self.last_seen: dict[str, float] = {}
        self.printed: dict[str, int] = {}

    def add(self, path: str, request: ExportTraceServiceRequest) -> None:
        now = time.monotonic()
        with self.lock:
            self.paths.add(path)
            for resource_spans in request.resource_spans:
                resource = {
                    kv.key: kv.value.string_value for kv in resource_spans.resource.attributes
                }
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        trace_id = span.trace_id.hex()
                        self.spans[trace_id].append((resource, span))
                        self.last_seen[trace_id] = now

    def all_spans(self) -> list[tuple[dict[str, str], Span]]:
        with self.lock:
            return [pair for pairs in self.spans.values() for pair in pairs]

    def due(self, quiet: float) -> list[str]:
        """Trace ids quiet for `quiet` seconds with spans not printed yet."""
        now = time.monotonic()
        with self.lock:
            return [
                trace_id
                for trace_id, seen in self.last_seen.items()
                if now - seen >= quiet and self.printed.get(trace_id) != len(self.spans[trace_id])
            ]

    def render(self, trace_id: str) -> str:
        with self.lock:
            spans = list(self.spans[trace_id])
            self.printed[trace_id] = len(spans)
            linked_from = [
                (resource.get("service.name", "?"), span, link)
                for other_id, others in self.spans.items()
                for resource, span in others
                for link in span.links
                if link.trace_id.hex() == trace_id and other_id != trace_id
            ]
        children = defaultdict(list)
        ids = {span.span_id for _, span in spans}
        for resource, span in sorted(spans, key=lambda pair: pair[1].start_time_unix_nano):
            parent = span.parent_span_id if span.parent_span_id in ids else b""
            children[parent].append((resource.get("service.name", "?"), span))
        lines = [f"trace {trace_id}"]

        def walk(parent: bytes, depth: int) -> None:
            for service, span in children[parent]:
                ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
                kind = KIND.get(span.kind, "")
                remote = span.parent_span_id and depth == 0
                remote = " (continues a remote parent)" if remote else ""
                lines.append(
                    f"{'  ' * (depth + 1)}{_label(span)}  [{service}{', ' + kind if kind else ''}] "
                    f"{ms:.1f} ms{remote}"
                )
                for link in span.links:
                    lines.append(
                        f"{'  ' * (depth + 2)}-> links to trace {link.trace_id.hex()} "
                        f"span {link.span_id.hex()}"
                    )
                walk(span.span_id, depth + 1)

        walk(b"", 0)
        for service, span, link in linked_from:
            lines.append(
                f"  <- span {link.span_id.hex()} was published by '{span.name}' [{service}] "
                f"in trace {span.trace_id.hex()}"
            )
        return "\n".join(lines)

    def notable(self, trace_id: str) -> bool:
        with self.lock:
            return any(_notable(span) for _, span in self.spans[trace_id])


class Tally:
    """--discard: what arrived, counted and thrown away (a collector that costs little, for
    make bench-tracing)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = self.bytes = 0

    def add(self, body: bytes) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += len(body)


def handler_for(traces: Traces, tally: Tally | None = None) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if tally is not None:
                tally.add(body)
            elif self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if tally is None:
                request = ExportTraceServiceRequest()
                if self.path.rstrip("/") == "/v1/traces":
                    request.ParseFromString(body)
                traces.add(self.path, request)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    return Receiver


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument(
        "--quiet", type=float, default=6.0, help="seconds (default 6: the SDK exports every 5 s)"
    )
    parser.add_argument("--all", action="store_true", help="also print idle beat ticks")
    parser.add_argument(
        "--discard",
        action="store_true",
        help="parse and print nothing; print the exports and bytes received at exit (SIGTERM)",
    )
    options = parser.parse_args(argv)
    traces, tally = Traces(), Tally() if options.discard else None
    server = ThreadingHTTPServer((options.host, options.port), handler_for(traces, tally))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"OTLP/HTTP on http://{options.host}:{server.server_port}/v1/traces", flush=True)
    if tally is not None:

        def report(signum, frame):
            print(f"received {tally.requests} exports, {tally.bytes} bytes", flush=True)
            sys.exit(0)

        signal.signal(signal.SIGTERM, report)
        signal.signal(signal.SIGINT, report)
        while True:
            time.sleep(3600)
    try:
        while True:
            time.sleep(0.5)
            for trace_id in traces.due(options.quiet):
                if options.all or traces.notable(trace_id):
                    print(traces.render(trace_id), end="\n\n", flush=True)
                else:
                    traces.render(trace_id)  # marks it printed
    except KeyboardInterrupt:
        server.shutdown()
        sys.exit(0)


if __name__ == "__main__":
    main()
