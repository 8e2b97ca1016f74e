import sys

from django.core.management.base import BaseCommand

from history.projector import projections_run
from history.selectors import ledger_drift


class Command(BaseCommand):
    help = (
        "Replay the ledger and report every order whose current state or snapshot disagrees "
        "with it. Exits 1 if there is any drift."
    )

    def add_arguments(self, parser):
        parser.add_argument("--skip-snapshots", action="store_true", help="Compare the state only.")

    def handle(self, *args, skip_snapshots, **options):
        if not skip_snapshots:
            projections_run()  # bring the snapshots up to what has committed
        drifted_orders, drifts = set(), 0
        for drift in ledger_drift(check_snapshots=not skip_snapshots):
            drifts += 1
            drifted_orders.add(drift.order_id)
            self.stdout.write(f"order {drift.order_id}: {drift.where}: {drift.detail}")
        if drifts:
            self.stdout.write(f"DRIFT: {drifts} problem(s) in {len(drifted_orders)} order(s)")
            sys.exit(1)
        self.stdout.write("OK: every order matches its ledger")
