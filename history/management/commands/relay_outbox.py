import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.tracing import tracing_setup
from history.relay import Publisher, outbox_relay


class Command(BaseCommand):
    help = "Relay unpublished outbox rows to the event exchange (the same relay beat runs)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Relay what is pending, then exit.")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.RELAY_INTERVAL_SECONDS,
            help="Seconds to sleep when nothing is pending.",
        )

    def handle(self, *args, once, batch_size, interval, **options):
        tracing_setup()  # when OTEL_EXPORTER_OTLP_ENDPOINT is set
        publisher = Publisher()
        stopping = threading.Event()
        # Finish the batch in hand, then exit: interrupting a batch mid-query would only
        # roll it back (and print a traceback).
        previous = {
            signum: signal.signal(signum, lambda *_: stopping.set())
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        if not once:
            self.stdout.write("Relaying the outbox; Ctrl-C or SIGTERM stops after the batch.")
            self.stdout.flush()
        try:
            while not stopping.is_set():
                result = outbox_relay(
                    publisher=publisher, batch_size=batch_size, should_stop=stopping.is_set
                )
                if result.published or result.failed or result.dead_lettered or once:
                    self.stdout.write(
                        f"published={result.published} failed={result.failed} "
                        f"dead_lettered={result.dead_lettered} held_back={result.held_back}"
                    )
                if once:
                    if result.errors:
                        raise CommandError(f"Could not reach the broker: {result.errors[0]}")
                    return
                if result.errors:
                    self.stderr.write(f"broker unavailable: {result.errors[0]}")
                stopping.wait(interval if not result.published else 0)
        finally:
            publisher.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
