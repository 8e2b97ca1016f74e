import heapq
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery

from config.api.formats import api_datetime
from config.errors import NotFound
from config.sql import fetch_all
from history.archive import archived_chain_rows, archived_runs
from history.chain import ORDER_FIELDS, order_entry_hash
from history.models import LedgerKind, OrderLedgerEntry, OrderSnapshot, StockLedgerEntry
from history.seals import NO_LEDGER_ROWS, chain_proof
from history.selectors import order_replay
from history.verification import chains_problems, ledger_rows
from inventory.models import Product, StockLevel
from orders.models import Customer, Order, OrderLine


def order_list() -> QuerySet[Order]:
    lines = OrderLine.objects.select_related("product").order_by("id")
    return Order.objects.prefetch_related(Prefetch("lines", queryset=lines))


def order_get(*, order_id: int) -> Order:
    order = order_list().filter(pk=order_id).first()
    if order is None:
        raise NotFound("Order", order_id)
    return order


def order_representation(*, order_id: int) -> dict:
    """The order as the API shows it, read with one query (lines joined to their order and
    product; every order has at least one line). Same shape as orders.apis.OrderOutput."""
    # Plain SQL: every cache miss and every write response comes here, and the ORM takes
    # longer to build this query than PostgreSQL takes to run it.
    rows = fetch_all(
        "SELECT o.customer_id, o.reference, o.status, o.version, o.created_at, "
        f"o.updated_at, p.sku, l.quantity FROM {Order._meta.db_table} AS o "
        f"JOIN {OrderLine._meta.db_table} AS l ON l.order_id = o.id "
        f"JOIN {Product._meta.db_table} AS p ON p.id = l.product_id "
        "WHERE o.id = %s ORDER BY l.id",
        [order_id],
    )
    if not rows:
        raise NotFound("Order", order_id)
    customer_id, reference, status, version, created_at, updated_at = rows[0][:6]
    return {
        "id": order_id,
        "customer": customer_id,
        "reference": reference,
        "status": status,
        "version": version,
        "created_at": api_datetime(created_at),
        "updated_at": api_datetime(updated_at),
        "lines": [{"sku": sku, "quantity": quantity} for *_, sku, quantity in rows],
    }


def order_exists(*, order_id: int) -> None:
    """Raise NotFound unless the order exists (one index probe, nothing loaded; plain SQL
    for the reason order_representation gives)."""
    if not fetch_all(f"SELECT 1 FROM {Order._meta.db_table} WHERE id = %s", [order_id]):
        raise NotFound("Order", order_id)


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.order_by("id")


# --- Replaying the order ledger against the orders ------------------------------------------


@dataclass(frozen=True)
class Drift:
    order_id: int
    where: str  # "ledger", "state" or "snapshot"
    detail: str


def order_ledger_drift(*, chunk_size: int = 1000, check_snapshots: bool = True) -> Iterator[Drift]:
    """Replay every order's ledger and yield each way in which the ledger itself, the
    current state or the snapshot disagrees with the replay."""
    order_ids = list(Order.objects.order_by("id").values_list("id", flat=True))
    for start in range(0, len(order_ids), chunk_size):
        chunk = order_ids[start : start + chunk_size]
        entries: dict[int, list] = defaultdict(list)
        for entry in OrderLedgerEntry.objects.filter(order_id__in=chunk).order_by(
            "order_id", "version", "id"
        ):
            entries[entry.order_id].append(entry)
        # An archived month's rows continue from the heads the archive registered.
        for order_id, run in archived_runs(LedgerKind.ORDER, aggregates=chunk):
            entries[order_id].append(run)
            entries[order_id].sort(key=_replay_order)
        lines: dict[int, dict[str, int]] = defaultdict(dict)
        for order_id, sku, quantity in OrderLine.objects.filter(order_id__in=chunk).values_list(
            "order_id", "product__sku", "quantity"
        ):
            lines[order_id][sku] = quantity
        orders = {
            o[0]: o
            for o in Order.objects.filter(pk__in=chunk).values_list("id", "version", "status")
        }
        snapshots = (
            {s.order_id: s for s in OrderSnapshot.objects.filter(order_id__in=chunk)}
            if check_snapshots
            else {}
        )
        for order_id in chunk:
            replayed = order_replay(entries[order_id], order_id=order_id)
            yield from _order_drift(
                replayed,
                lines[order_id],
                orders[order_id],
                snapshots.get(order_id),
                check_snapshots,
            )


def _replay_order(entry) -> tuple[int, int]:
    return (getattr(entry, "first_version", entry.version), entry.id)


def _order_drift(replayed, lines, order_row, snapshot, check_snapshots) -> Iterator[Drift]:
    order_id, version, status = order_row
    for problem in replayed.problems:
        yield Drift(order_id, "ledger", problem)
    if replayed.quantities != lines:
        yield Drift(order_id, "state", f"lines are {lines}, the ledger says {replayed.quantities}")
    if replayed.version != version:
        yield Drift(order_id, "state", f"version is {version}, the ledger says {replayed.version}")
    if replayed.status != status:
        yield Drift(order_id, "state", f"status is {status}, the ledger says {replayed.status}")
    if not check_snapshots:
        return
    if snapshot is None:
        yield Drift(order_id, "snapshot", "no snapshot")
        return
    if snapshot.lines != replayed.quantities:
        yield Drift(
            order_id,
            "snapshot",
            f"lines are {snapshot.lines}, the ledger says {replayed.quantities}",
        )
    if snapshot.total_quantity != sum(replayed.quantities.values()):
        yield Drift(order_id, "snapshot", f"total is {snapshot.total_quantity}")
    if snapshot.last_version != replayed.version:
        yield Drift(
            order_id,
            "snapshot",
            f"version is {snapshot.last_version}, the ledger says {replayed.version}",
        )
    if snapshot.status != replayed.status:
        yield Drift(order_id, "snapshot", f"status is {snapshot.status}")


def order_chain_problems(*, order_ids: Iterable[int] | None = None) -> Iterator[tuple[int, str]]:
    """(order id, problem) for every break in the orders' hash chains (history.verification),
    of every order or of these."""
    orders = Order.objects.order_by("id")
    entries = OrderLedgerEntry.objects.order_by("order_id", "id")
    if order_ids is not None:
        order_ids = list(order_ids)
        orders, entries = orders.filter(id__in=order_ids), entries.filter(order_id__in=order_ids)
    fields = [name for name in ORDER_FIELDS if name != "order_id"]
    rows = heapq.merge(
        ledger_rows(entries, key=["order_id"], fields=fields),
        archived_chain_rows(LedgerKind.ORDER, aggregates=order_ids),
        key=itemgetter("order_id", "id"),
    )
    yield from chains_problems(
        orders.values_list("id", "ledger_head").iterator(2000),
        groupby(rows, key=itemgetter("order_id")),
        order_entry_hash,
    )


def order_proof(*, order_id: int) -> dict:
    """What proves the order's ledger to someone who does not trust this server
    (history.seals.chain_proof), or NotFound."""
    order_exists(order_id=order_id)
    proof = chain_proof(entries=OrderLedgerEntry.objects.filter(order_id=order_id))
    return {"aggregate": {"type": "order", "order_id": order_id}, **(proof or NO_LEDGER_ROWS)}


def order_stock_movements(*, order_id: int) -> list[StockLedgerEntry]:
    """The stock ledger rows the order caused, oldest first, each with `level_id` (its stock
    level's pk, for the link to that level's timeline): one query."""
    level = StockLevel.objects.filter(
        product_id=OuterRef("product_id"), location_id=OuterRef("location_id")
    ).values("pk")[:1]
    return list(
        StockLedgerEntry.objects.filter(reference_type="order", reference_id=str(order_id))
        .annotate(level_id=Subquery(level))
        .order_by("id")
    )
