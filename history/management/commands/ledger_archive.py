from datetime import date

from django.core.management.base import BaseCommand, CommandError

from history.archive import Archived, ArchiveRefused, ledger_archive


def _month(text: str) -> date:
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError as exc:
        raise CommandError(f"--before takes a month as YYYY-MM, not {text!r}") from exc


class Command(BaseCommand):
    help = (
        "Archive every month of the order and stock ledgers before --before (YYYY-MM): each "
        "month's partition is written to LEDGER_ARCHIVE_DIR (gzip'd CSV and a JSON manifest "
        "with the chain heads), read back and verified, registered, and only then detached "
        "and dropped. Safe to run again after a crash: it finishes what was started."
    )

    def add_arguments(self, parser):
        parser.add_argument("--before", required=True, type=_month, metavar="YYYY-MM")

    def handle(self, *args, before: date, **options):
        try:
            done = ledger_archive(before=before, report=self._report)
        except ArchiveRefused as exc:
            raise CommandError(f"Refused: {exc}") from exc
        if not done:
            self.stdout.write(f"Nothing to archive before {before:%Y-%m}.")

    def _report(self, archived: Archived) -> None:
        how = " (registered by an earlier run, verified again)" if archived.resumed else ""
        self.stdout.write(
            f"{archived.ledger} ledger {archived.month:%Y-%m}: {archived.rows} rows archived to "
            f"{archived.file}{how}, partition dropped"
        )
