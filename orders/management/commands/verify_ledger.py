import sys

from django.core.management.base import BaseCommand

from history.projector import projections_run
from inventory.selectors import stock_drift
from orders.selectors import order_ledger_drift


class Command(BaseCommand):
    help = (
        "Replay the order and stock ledgers and report every order, stock level and sku "
        "total whose current state or projection disagrees with them. Exits 1 if there is "
        "any drift."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--skip-snapshots",
            action="store_true",
            help="Compare the state only (no order snapshots, no stock totals).",
        )

    def handle(self, *args, skip_snapshots, **options):
        if not skip_snapshots:
            projections_run()  # bring the snapshots up to what has committed
        drifted_orders, drifts = set(), 0
        for drift in order_ledger_drift(check_snapshots=not skip_snapshots):
            drifts += 1
            drifted_orders.add(drift.order_id)
            self.stdout.write(f"order {drift.order_id}: {drift.where}: {drift.detail}")
        drifted_stock, stock_drifts = set(), 0
        for drift in stock_drift(check_totals=not skip_snapshots):
            stock_drifts += 1
            drifted_stock.add((drift.where == "totals", drift.subject))
            self.stdout.write(self._stock_line(drift))
        if drifts:
            self.stdout.write(f"DRIFT: {drifts} problem(s) in {len(drifted_orders)} order(s)")
        if stock_drifts:
            self.stdout.write(
                f"DRIFT: {stock_drifts} stock problem(s) in "
                f"{len(drifted_stock)} stock level(s) or sku total(s)"
            )
        if drifts or stock_drifts:
            sys.exit(1)
        self.stdout.write("OK: every order matches its ledger")
        self.stdout.write(
            "OK: every stock level matches the stock ledger"
            + ("" if skip_snapshots else ", and the sku totals match the levels")
        )

    @staticmethod
    def _stock_line(drift) -> str:
        if drift.where == "totals":
            return f"stock totals {drift.subject}: {drift.detail}"
        if drift.where == "ledger":
            return f"stock {drift.subject}: ledger: {drift.detail}"
        return f"stock {drift.subject}: {drift.detail}"
