import orjson
from django.core.management.base import BaseCommand

from history.consumers import HANDLERS, events_consume


class Command(BaseCommand):
    help = (
        "Bind a durable queue to the event exchange, print each event, deduplicate by id "
        "and acknowledge. Copy this to build your own consumer."
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
        def show(event: dict, handled: bool) -> None:
            marker = "" if handled else "  (duplicate, skipped)"
            self.stdout.write(
                f"{event['type']} subject={event['subject']} id={event['id']}{marker}\n"
                f"  {orjson.dumps(event['data']).decode()}"
            )

        read = events_consume(
            queue_name=queue,
            binding=binding,
            handler=HANDLERS[handler],
            on_event=show,
            max_messages=max_messages,
            idle_timeout=idle_timeout,
        )
        self.stdout.write(f"read {read} message(s)")
