from django.core.management.base import BaseCommand, CommandError

from history.projector import PROJECTIONS, projections_rebuild


class Command(BaseCommand):
    help = "Empty the snapshot tables and rebuild them from the ledger."

    def add_arguments(self, parser):
        parser.add_argument(
            "names", nargs="*", metavar="projection", help=f"Any of: {', '.join(PROJECTIONS)}."
        )

    def handle(self, *args, names, **options):
        unknown = sorted(set(names) - set(PROJECTIONS))
        if unknown:
            raise CommandError(f"Unknown projection(s): {', '.join(unknown)}.")
        for name, applied in projections_rebuild(names=names or None).items():
            self.stdout.write(f"{name}: rebuilt from {applied} ledger rows")
