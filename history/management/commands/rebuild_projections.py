from django.core.management.base import BaseCommand, CommandError

from history.archive import archives_live
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
        if archived := list(archives_live().values_list("ledger", "month")):
            months = ", ".join(f"{ledger} {month:%Y-%m}" for ledger, month in archived)
            raise CommandError(
                f"Refused: ledger months are archived out of the database ({months}), and a "
                "rebuild from the ledger would leave their rows out of the projections. "
                "Restore them first (ledger_restore)."
            )
        for name, applied in projections_rebuild(names=names or None).items():
            self.stdout.write(f"{name}: rebuilt from {applied} ledger rows")
