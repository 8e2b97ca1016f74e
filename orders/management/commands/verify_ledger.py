import sys

from django.core.management.base import BaseCommand

from history.archive import (
    ARCHIVED_ROWS,
    LEDGERS,
    archive_problems,
    archives_live,
    archives_pending,
)
from history.models import LedgerSeal
from history.projector import projections_run
from history.seals import seal_problems
from inventory.models import StockLevel
from inventory.selectors import stock_chain_problems, stock_drift
from orders.selectors import order_chain_problems, order_ledger_drift


class Command(BaseCommand):
    help = (
        "Replay the order and stock ledgers and report every order, stock level and sku "
        "total whose current state or projection disagrees with them; check every hash "
        "chain and every seal, and name each row or seal that was tampered with. Exits 1 "
        "if anything is wrong."
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
        tampered = self._tampering()
        if drifts or stock_drifts or tampered:
            sys.exit(1)
        self.stdout.write("OK: every order matches its ledger")
        self.stdout.write(
            "OK: every stock level matches the stock ledger"
            + ("" if skip_snapshots else ", and the sku totals match the levels")
        )
        seals = LedgerSeal.objects.count()
        self.stdout.write(f"OK: every hash chain is intact, and all {seals} seal(s) verify")
        if archived := archives_live().count():
            self.stdout.write(f"OK: all {archived} archived ledger month(s) verify")
        for archive in archives_pending():
            self.stdout.write(
                f"NOTE: the archive of the {archive.ledger} ledger's {archive.month:%Y-%m} is "
                "registered but its partition was not dropped: run ledger_archive again"
            )

    def _tampering(self) -> int:
        """Report every break in the hash chains and the seals; how many."""
        problems = 0
        # The archived months: their files against the registry, their rows loaded for the
        # seals; the chains and replays go on from their heads (history.archive).
        archived = None
        if archives_live().exists():
            for problem in archive_problems(load_rows=True):
                problems += 1
                self.stdout.write(problem)
            archived = {
                LEDGERS[ledger]._meta.db_table: table for ledger, table in ARCHIVED_ROWS.items()
            }
        for order_id, problem in order_chain_problems():
            problems += 1
            self.stdout.write(f"order {order_id}: chain: {problem}")
        places = {}
        for place, problem in stock_chain_problems():
            problems += 1
            if place not in places:
                level = StockLevel.objects.filter(product_id=place[0], location_id=place[1])
                names = level.values_list("product__sku", "location__code").first()
                places[place] = "@".join(names) if names else f"product {place[0]} @ {place[1]}"
            self.stdout.write(f"stock {places[place]}: chain: {problem}")
        for problem in seal_problems(archived=archived):
            problems += 1
            self.stdout.write(problem)
        if problems:
            self.stdout.write(f"TAMPERED: {problems} problem(s) in the hash chains and seals")
        return problems

    @staticmethod
    def _stock_line(drift) -> str:
        if drift.where == "totals":
            return f"stock totals {drift.subject}: {drift.detail}"
        if drift.where == "ledger":
            return f"stock {drift.subject}: ledger: {drift.detail}"
        return f"stock {drift.subject}: {drift.detail}"
