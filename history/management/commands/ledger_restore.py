from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from history.archive import ArchiveRefused, ledger_restore


class Command(BaseCommand):
    help = (
        "Bring an archived month of a ledger back into the database from its archive file "
        "(or its manifest): the month's partition is made again, the rows are copied in and "
        "checked against the manifest, and the archive is marked restored. Refused when the "
        "month is in the database already."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The .csv.gz archive or its .manifest.json")

    def handle(self, *args, file: Path, **options):
        try:
            archive = ledger_restore(path=file)
        except ArchiveRefused as exc:
            raise CommandError(f"Refused: {exc}") from exc
        self.stdout.write(
            f"{archive.ledger} ledger {archive.month:%Y-%m}: {archive.row_count} rows restored "
            f"from {file}"
        )
