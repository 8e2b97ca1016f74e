from django.core.management.base import BaseCommand

from history.seals import ledger_seal, seal_document


class Command(BaseCommand):
    help = (
        "Seal the ledger rows committed since the last seal, now (beat does it every "
        "LEDGER_SEAL_INTERVAL_SECONDS), and print the seal. Prints nothing new when there "
        "is nothing to seal."
    )

    def handle(self, *args, **options):
        seal = ledger_seal()
        if seal is None:
            self.stdout.write("Nothing to seal: every committed ledger row is sealed.")
            return
        document = seal_document(seal)
        self.stdout.write(
            f"Sealed {seal.batch_size} rows: seal {seal.number}, tree size {seal.tree_size}, "
            f"root {document['root']}"
        )
