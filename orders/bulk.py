"""Bulk quantity changes: up to MAX_BULK_ITEMS single-line commands in one transaction, with
a number of database round trips that does not grow with the number of items.

Every item is its own command, exactly as if `order_set_quantities` / `order_adjust` had
been called for it alone: it bumps its order's version by one and writes one ledger row and
one `order.quantity_adjusted` outbox event. Items for the same order apply in input order,
each seeing the quantity and version left by the one before it.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.db import connection, transaction
from django.utils import timezone

from config.errors import (
    DomainError,
    DomainValidationError,
    ErrorCode,
    InsufficientStock,
    NotFound,
    OrderNotEditable,
    QuantityOutOfRange,
    VersionConflict,
)
from config.sql import fetch_all, one_of
from history.audit import Audit
from history.events import LineChange
from history.models import OrderEventType
from inventory.models import Product, Reservation, ReservationStatus, StockLevel
from inventory.services import order_stock_apply
from orders.models import MAX_LINE_QUANTITY, Order, OrderLine, OrderStatus
from orders.writes import OrderEvent, order_changes_write

MAX_BULK_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class BulkItem:
    """One command: set `quantity`, or add `delta`, for one sku of one order (exactly one
    of the two). `expected_version`, when given, must be the order's version just before
    this item applies (see `order_adjustments_bulk`)."""

    order: int
    sku: str
    quantity: int | None = None
    delta: int | None = None
    expected_version: int | None = None


class BulkStatus(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    ERROR = "error"


@dataclass(slots=True)
class BulkResult:
    """The outcome of one item. Applied: the version it produced, the new quantity and the
    delta. Unchanged: the order's version and the quantity as they stood. Error: `error`
    is a problem-like dict (code, status, title, detail and the error's extra fields)."""

    index: int
    order: int
    sku: str
    status: BulkStatus
    version: int | None = None
    quantity: int | None = None
    delta: int | None = None
    error: dict | None = None


class BatchRejected(DomainError):
    """An atomic batch with failing items: nothing was written. `errors` holds one entry
    per failing item (its index, a JSON pointer into the request, and its problem)."""

    code = ErrorCode.BATCH_REJECTED
    title = "Batch refused"

    def __init__(self, failed: list[BulkResult], total: int):
        statuses = {result.error["status"] for result in failed}
        if statuses & {400, 404}:
            self.status = 400  # the batch names things that do not exist
        elif statuses == {412}:
            self.status = 412
        else:
            self.status = 409
        first = failed[0]
        super().__init__(
            f"{len(failed)} of {total} items cannot be applied, so none was "
            f"(atomic batch). First: item {first.index}: {first.error['detail']}",
            errors=[
                {
                    "index": result.index,
                    "attr": f"items.{result.index}",
                    "pointer": f"#/items/{result.index}",
                    **result.error,
                }
                for result in failed
            ],
        )


def order_adjustments_bulk(
    *, items: Sequence[BulkItem], atomic: bool, audit: Audit
) -> list[BulkResult]:
    """Apply the items in one transaction and return one result per item, in input order.

    Locks every order the batch names (one SELECT ... FOR UPDATE, in id order), then, for
    orders with tracked products, their active reservations and the products' stock
    levels (in pk order), before any stock is moved; so batches and single commands always
    take their locks in the same order and cannot deadlock.

    Each item is checked like a single command, in this order: the order exists (404
    not_found), `expected_version` matches (412 version_conflict), the order is open (409
    order_not_editable), the sku exists (400 unknown_sku), the new quantity is within
    0..MAX_LINE_QUANTITY (409 quantity_out_of_range). `expected_version` refers to the
    order's version just before the item applies: its version when the batch started plus
    one for every earlier item of this batch that changed that order (failed and unchanged
    items change nothing). An item that changes nothing is `unchanged` and writes nothing.

    Stock of tracked products is reserved or released once per order, for the net delta of
    its applied items, by `order_stock_apply` (the same rules as single changes). If that
    is refused (409 insufficient_stock), every item of that order fails and none of them is
    written; the other orders are not affected.

    Not atomic: failing items write nothing, the others are applied. Atomic: if any item
    fails, BatchRejected is raised and nothing at all is written; an insufficient-stock
    refusal stops the batch at the first order it happens to.
    """
    for index, item in enumerate(items):
        if (item.quantity is None) == (item.delta is None):
            raise DomainValidationError(
                "Give either quantity or delta.", field=f"items.{index}.quantity"
            )
    if len(items) > MAX_BULK_ITEMS:
        raise DomainValidationError(
            f"At most {MAX_BULK_ITEMS} items per batch, not {len(items)}.", field="items"
        )
    if not items:
        return []
    with transaction.atomic():
        plan = _Plan.build(items)
        failed = [result for result in plan.results if result.status == BulkStatus.ERROR]
        if atomic and failed:
            raise BatchRejected(failed, len(items))
        plan.apply_stock(atomic=atomic, audit=audit)
        plan.write(audit=audit, now=timezone.now())
    return plan.results


# --- Internals ------------------------------------------------------------------------------


@dataclass(slots=True)
class _OrderState:
    id: int
    version: int
    status: str
    reference: str
    customer_id: int | None


@dataclass(slots=True)
class _Change:
    index: int
    order_id: int
    product_id: int
    sku: str
    tracked: bool
    line_id: int | None
    before: int
    after: int
    version: int


@dataclass(slots=True)
class _Line:
    line_id: int | None
    quantity: int


def _problem(exc: DomainError) -> dict:
    return {
        "code": str(exc.code),
        "status": exc.status,
        "title": exc.title,
        "detail": exc.detail,
        **exc.extra,
    }


@dataclass
class _Plan:
    items: Sequence[BulkItem]
    results: list[BulkResult]
    orders: dict[int, _OrderState]
    changes: list[_Change]
    # order id -> indexes of its items that did not fail on their own
    passed: dict[int, list[int]]

    @classmethod
    def build(cls, items: Sequence[BulkItem]) -> "_Plan":
        """Read everything the batch needs (three queries) and work out every item."""
        # Plain SQL: with the ORM, building and converting these statements (up to a
        # thousand parameters each) cost more than running them.
        is_sku, params = one_of("sku", {item.sku for item in items})
        products = {
            sku: (product_id, bool(tracked))
            for sku, product_id, tracked in fetch_all(
                f"SELECT sku, id, track_inventory FROM {Product._meta.db_table} WHERE {is_sku}",
                params,
            )
        }
        is_order, params = one_of("id", {item.order for item in items})
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        orders = {
            row[0]: _OrderState(*row)
            for row in fetch_all(
                "SELECT id, version, status, reference, customer_id "
                f"FROM {Order._meta.db_table} WHERE {is_order} ORDER BY id{lock}",
                params,
            )
        }
        lines: dict[tuple[int, int], _Line] = {}
        if orders and products:
            of_orders, order_params = one_of("order_id", orders)
            of_products, product_params = one_of("product_id", [p for p, _ in products.values()])
            lines = {
                (order_id, product_id): _Line(line_id, quantity)
                for line_id, order_id, product_id, quantity in fetch_all(
                    "SELECT id, order_id, product_id, quantity "
                    f"FROM {OrderLine._meta.db_table} WHERE {of_orders} AND {of_products}",
                    order_params + product_params,
                )
            }
        plan = cls(items=items, results=[], orders=orders, changes=[], passed=defaultdict(list))
        versions = {order_id: order.version for order_id, order in orders.items()}
        for index, item in enumerate(items):
            plan.results.append(plan._work_out(index, item, products, versions, lines))
        return plan

    def _work_out(self, index, item, products, versions, lines) -> BulkResult:
        result = BulkResult(index=index, order=item.order, sku=item.sku, status=BulkStatus.ERROR)
        order = self.orders.get(item.order)
        if order is None:
            return _failed(result, NotFound(f"Order {item.order} does not exist."))
        version = versions[order.id]
        if item.expected_version is not None and item.expected_version != version:
            return _failed(result, VersionConflict(expected=item.expected_version, current=version))
        if order.status != OrderStatus.OPEN:
            return _failed(
                result,
                OrderNotEditable(f"Order {order.id} is {order.status} and cannot be changed."),
            )
        product = products.get(item.sku)
        if product is None:
            return _failed(
                result,
                DomainValidationError(f"Unknown sku: {item.sku}.", code=ErrorCode.UNKNOWN_SKU),
            )
        product_id, tracked = product
        line = lines.get((order.id, product_id))
        before = line.quantity if line else 0
        after = item.quantity if item.quantity is not None else before + item.delta
        if not 0 <= after <= MAX_LINE_QUANTITY:
            if item.quantity is not None:
                what = f"{item.sku} cannot be set to {after}"
            else:
                what = (
                    f"Adjusting {item.sku} by {item.delta:+d} would take it from {before} "
                    f"to {after}"
                )
            return _failed(
                result,
                QuantityOutOfRange(
                    f"{what}; a quantity must stay between 0 and {MAX_LINE_QUANTITY}.",
                    sku=item.sku,
                    quantity=before,
                ),
            )
        self.passed[order.id].append(index)
        result.quantity = after
        result.delta = after - before
        if after == before:
            result.status, result.version = BulkStatus.UNCHANGED, version
            return result
        if line is None:
            line = lines[(order.id, product_id)] = _Line(None, 0)
        line.quantity = after
        version += 1
        versions[order.id] = version
        self.changes.append(
            _Change(
                index, order.id, product_id, item.sku, tracked, line.line_id, before, after, version
            )
        )
        result.status, result.version = BulkStatus.APPLIED, version
        return result

    def apply_stock(self, *, atomic: bool, audit: Audit) -> None:
        """Reserve or release the net delta of each order's tracked lines. Not atomic: each
        order in a savepoint, and a refusal fails only that order's items."""
        deltas: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for change in self.changes:
            if change.tracked:
                deltas[change.order_id][change.product_id] += change.after - change.before
        deltas = {
            order_id: nonzero
            for order_id, by_product in deltas.items()
            if (nonzero := {pid: delta for pid, delta in by_product.items() if delta})
        }
        if not deltas:
            return
        _lock_stock(deltas)
        refused: dict[int, InsufficientStock] = {}
        for order_id in sorted(deltas):
            order = _order_instance(self.orders[order_id])
            try:
                if atomic:
                    order_stock_apply(order=order, deltas=deltas[order_id], audit=audit)
                else:
                    with transaction.atomic():
                        order_stock_apply(order=order, deltas=deltas[order_id], audit=audit)
            except InsufficientStock as exc:
                if atomic:
                    self._refuse({order_id: exc})
                    failed = [self.results[i] for i in self.passed[order_id]]
                    raise BatchRejected(failed, len(self.items)) from exc
                refused[order_id] = exc
        if refused:
            self._refuse(refused)

    def _refuse(self, refused: dict[int, InsufficientStock]) -> None:
        for order_id, exc in refused.items():
            for index in self.passed[order_id]:
                result = self.results[index]
                result.version = result.quantity = result.delta = None
                _failed(result, exc)
        self.changes = [change for change in self.changes if change.order_id not in refused]

    def write(self, *, audit: Audit, now: datetime) -> None:
        """Write the new state, one ledger row and one outbox event per change, in one
        statement whatever the number of changes (orders.writes)."""
        updated_lines: dict[int, int] = {}
        new_lines: dict[tuple[int, int], int] = {}
        for change in self.changes:
            if change.line_id is None:
                new_lines[(change.order_id, change.product_id)] = change.after
            else:
                updated_lines[change.line_id] = change.after
        order_changes_write(
            events=[self._event(change) for change in self.changes],
            updated_lines=updated_lines,
            new_lines=new_lines,
            audit=audit,
            now=now,
        )

    def _event(self, change: _Change) -> OrderEvent:
        order = self.orders[change.order_id]
        return OrderEvent(
            order_id=order.id,
            version=change.version,
            status=order.status,
            reference=order.reference,
            customer_id=order.customer_id,
            event_type=OrderEventType.QUANTITY_ADJUSTED,
            changes=[LineChange(change.product_id, change.sku, change.before, change.after)],
        )


def _failed(result: BulkResult, exc: DomainError) -> BulkResult:
    result.status = BulkStatus.ERROR
    result.error = _problem(exc)
    return result


def _order_instance(state: _OrderState) -> Order:
    return Order.from_db(
        "default",
        ["id", "version", "status", "reference", "customer_id"],
        [state.id, state.version, state.status, state.reference, state.customer_id],
    )


def _lock_stock(deltas: dict[int, dict[int, int]]) -> None:
    """Take up front, in pk order, every stock lock that order_stock_apply will take for
    these orders: their active reservations, then all stock levels of the products. Taken
    order by order instead, two commands could lock levels in opposite orders."""
    product_ids = sorted({pid for by_product in deltas.values() for pid in by_product})
    list(
        Reservation.objects.select_for_update()
        .filter(order_id__in=deltas, product_id__in=product_ids, status=ReservationStatus.ACTIVE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    list(
        StockLevel.objects.select_for_update()
        .filter(product_id__in=product_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
