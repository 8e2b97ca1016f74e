import orjson
from django.core.management.base import BaseCommand, CommandError

from config.tracing import tracing_setup
from history.consumers import HANDLERS, Delivery, Outcome, QueueMismatch, events_consume


class Command(BaseCommand):
    help = (
        "Bind a durable quorum queue to the event exchange, print each event, deduplicate by "
        "id and acknowledge; a failing event is retried, then dead-lettered to <queue>.dead. "
        "Copy this to build your own consumer."
    )

    def add_arguments(self, parser):
        parser.add_argument("--queue", default="ordertrack.consume_events")
        parser.add_argument("--binding", default="#", help="Routing-key pattern, e.g. order.*")
        parser.add_argument("--handler", choices=sorted(HANDLERS), default="print")
        parser.add_argument("--max-messages", type=int, default=None)
        parser.add_argument(
            "--idle-timeout", type=float, default=None, help="Exit after this many idle seconds."
        )

    def handle(self, *args, queue, binding, handler, max_messages, idle_timeout, **options):
        tracing_setup()  # when OTEL_EXPORTER_OTLP_ENDPOINT is set

        def show(delivery: Delivery) -> None:
            event = delivery.event
            if event is None:
                self.stderr.write(f"not an event, dead-lettered to {queue}.dead: {delivery.error}")
                return
            line = f"{event.get('type')} subject={event.get('subject')} id={event['id']}"
            if delivery.outcome in (Outcome.RETRY, Outcome.DEAD_LETTERED):
                then = "will retry" if delivery.outcome == Outcome.RETRY else "dead-lettered"
                self.stderr.write(
                    f"{line}  FAILED (delivery {delivery.attempt} of "
                    f"{delivery.max_deliveries}, {then}): {delivery.error}"
                )
                return
            marker = "  (duplicate, skipped)" if delivery.outcome == Outcome.DUPLICATE else ""
            self.stdout.write(f"{line}{marker}\n  {orjson.dumps(event.get('data')).decode()}")

        try:
            read = events_consume(
                queue_name=queue,
                binding=binding,
                handler=HANDLERS[handler],
                on_event=show,
                max_messages=max_messages,
                idle_timeout=idle_timeout,
            )
        except (QueueMismatch, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"read {read} message(s)")
