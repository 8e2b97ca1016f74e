"""The one write path for orders. The admin, the API, management commands and tests all
call these functions; each runs in a single transaction that writes the new state, one
ledger row per changed line and one outbox event."""

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from config.errors import (
    DomainValidationError,
    ErrorCode,
    NotFound,
    OrderNotEditable,
    QuantityOutOfRange,
    VersionConflict,
)
from config.sql import fetch_all, one_of
from history.audit import Audit
from history.events import LineChange
from history.models import OrderEventType
from inventory.models import Product
from inventory.services import order_stock_apply, order_stock_consume, order_stock_release
from orders.models import MAX_LINE_QUANTITY, Customer, Order, OrderLine, OrderStatus
from orders.writes import OrderEvent, order_changes_write


def customer_create(*, name: str, email: str = "") -> Customer:
    return Customer.objects.create(name=name, email=email)


def order_create(
    *,
    customer_id: int | None,
    reference: str,
    lines: Mapping[str, int],
    audit: Audit,
) -> Order:
    if not lines:
        raise DomainValidationError("An order needs at least one line.", field="lines")
    for sku, quantity in lines.items():
        _check_in_range(sku, quantity)
    products = _products_by_sku(lines.keys())
    if customer_id is not None and not Customer.objects.filter(pk=customer_id).exists():
        raise DomainValidationError(f"Customer {customer_id} does not exist.", field="customer")

    now = timezone.now()
    with transaction.atomic():
        order = Order.objects.create(
            customer_id=customer_id, reference=reference, created_at=now, updated_at=now
        )
        order_changes_write(
            events=[
                _event(
                    order,
                    OrderEventType.CREATED,
                    [LineChange(products[sku].pk, sku, 0, qty) for sku, qty in lines.items()],
                )
            ],
            updated_lines={},
            new_lines={(order.pk, products[sku].pk): qty for sku, qty in lines.items()},
            audit=audit,
            now=now,
            update_orders=False,
        )
        order_stock_apply(
            order=order,
            deltas={p.pk: lines[sku] for sku, p in products.items() if p.track_inventory},
            audit=audit,
        )
    return order


def order_set_quantities(
    *,
    order_id: int,
    quantities: Mapping[str, int],
    expected_version: int | None = None,
    audit: Audit,
) -> Order:
    """Set absolute line quantities; a sku not yet on the order adds a line. Unchanged
    lines are skipped, and a command that changes nothing bumps no version."""
    for sku, quantity in quantities.items():
        _check_in_range(sku, quantity)
    with transaction.atomic():
        order = _lock_editable_order(order_id, expected_version)
        current = _current_lines(order, quantities.keys())
        changes = [
            LineChange(line.product_id, sku, line.quantity, quantities[sku])
            for sku, line in current.items()
            if quantities[sku] != line.quantity
        ]
        return _apply_changes(order, changes, current, OrderEventType.QUANTITY_ADJUSTED, audit)


def order_adjust(
    *,
    order_id: int,
    deltas: Mapping[str, int],
    expected_version: int | None = None,
    audit: Audit,
) -> Order:
    """Apply signed deltas to line quantities; the result must stay within range."""
    with transaction.atomic():
        order = _lock_editable_order(order_id, expected_version)
        current = _current_lines(order, deltas.keys())
        changes = []
        for sku, line in current.items():
            before = line.quantity
            after = before + deltas[sku]
            if not 0 <= after <= MAX_LINE_QUANTITY:
                raise QuantityOutOfRange(
                    f"Adjusting {sku} by {deltas[sku]:+d} would take it from {before} to "
                    f"{after}; a quantity must stay between 0 and {MAX_LINE_QUANTITY}.",
                    sku=sku,
                    quantity=before,
                )
            if after != before:
                changes.append(LineChange(line.product_id, sku, before, after))
        return _apply_changes(order, changes, current, OrderEventType.QUANTITY_ADJUSTED, audit)


def order_cancel(*, order_id: int, expected_version: int | None = None, audit: Audit) -> Order:
    """Cancel the order: every line goes to zero (recorded as `order.cancelled` rows) and the
    order can no longer be changed."""
    with transaction.atomic():
        order = _lock_editable_order(order_id, expected_version)
        current = _current_lines(order)
        changes = [
            LineChange(line.product_id, sku, line.quantity, 0) for sku, line in current.items()
        ]
        order_stock_release(order=order, audit=audit)
        order.status = OrderStatus.CANCELLED
        return _apply_changes(
            order, changes, current, OrderEventType.CANCELLED, audit, status_changed=True
        )


def order_fulfil(*, order_id: int, expected_version: int | None = None, audit: Audit) -> Order:
    """Fulfil the order: its reservations are consumed (stock leaves on_hand) and it can
    no longer be changed. Recorded as `order.fulfilled` rows with unchanged quantities."""
    with transaction.atomic():
        order = _lock_editable_order(order_id, expected_version)
        current = _current_lines(order)
        changes = [
            LineChange(line.product_id, sku, line.quantity, line.quantity)
            for sku, line in current.items()
        ]
        order_stock_consume(order=order, audit=audit)
        order.status = OrderStatus.FULFILLED
        return _apply_changes(
            order, changes, current, OrderEventType.FULFILLED, audit, status_changed=True
        )


def _check_in_range(sku: str, quantity: int) -> None:
    if not 0 <= quantity <= MAX_LINE_QUANTITY:
        raise DomainValidationError(
            f"Quantity for {sku} must be between 0 and {MAX_LINE_QUANTITY}, not {quantity}.",
            field="lines",
        )


def _products_by_sku(skus: Iterable[str]) -> dict[str, Product]:
    skus = list(skus)
    products = {p.sku: p for p in Product.objects.filter(sku__in=skus)}
    unknown = [sku for sku in skus if sku not in products]
    if unknown:
        raise DomainValidationError(
            f"Unknown sku: {', '.join(sorted(unknown))}.", field="lines", code=ErrorCode.UNKNOWN_SKU
        )
    return products


def _lock_editable_order(order_id: int, expected_version: int | None) -> Order:
    """Lock the order row for the rest of the transaction. The order row is always the
    first lock an order command takes; stock rows come after it, ordered by pk."""
    # Plain SQL here and in _current_lines: these run on every order command, and the ORM
    # spends longer building each query than PostgreSQL spends running it.
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    rows = fetch_all(
        f"SELECT {', '.join(_LOCKED_FIELDS)} FROM {Order._meta.db_table} WHERE id = %s{lock}",
        [order_id],
    )
    if not rows:
        raise NotFound(f"Order {order_id} does not exist.")
    order = Order.from_db(connection.alias, _LOCKED_FIELDS, rows[0])
    if expected_version is not None and expected_version != order.version:
        raise VersionConflict(expected=expected_version, current=order.version)
    if order.status != OrderStatus.OPEN:
        raise OrderNotEditable(f"Order {order_id} is {order.status} and cannot be changed.")
    return order


_LOCKED_FIELDS = ["id", "customer_id", "reference", "status", "version"]


class _CurrentLine(NamedTuple):
    line_id: int | None
    product_id: int
    quantity: int
    tracked: bool


def _current_lines(order: Order, skus: Iterable[str] | None = None) -> dict[str, _CurrentLine]:
    """sku -> current line, for the given skus (all lines when None). A sku that is not on
    the order yet gets a line-to-be with quantity 0."""
    sql = (
        "SELECT p.sku, l.id, l.product_id, l.quantity, p.track_inventory "
        f"FROM {OrderLine._meta.db_table} AS l "
        f"JOIN {Product._meta.db_table} AS p ON p.id = l.product_id WHERE l.order_id = %s"
    )
    params: list = [order.pk]
    if skus is not None:
        skus = list(skus)
        is_sku, sku_params = one_of("p.sku", skus)
        sql += f" AND {is_sku}"
        params += sku_params
    current = {
        sku: _CurrentLine(line_id, product_id, quantity, bool(tracked))
        for sku, line_id, product_id, quantity, tracked in fetch_all(sql + " ORDER BY l.id", params)
    }
    if skus is None:
        return current
    missing = [sku for sku in skus if sku not in current]
    if missing:
        for sku, product in _products_by_sku(missing).items():
            current[sku] = _CurrentLine(None, product.pk, 0, product.track_inventory)
    return {sku: current[sku] for sku in skus}


def _event(order: Order, event_type: OrderEventType, changes: list[LineChange]) -> OrderEvent:
    return OrderEvent(
        order_id=order.pk,
        version=order.version,
        status=order.status,
        reference=order.reference,
        customer_id=order.customer_id,
        event_type=event_type,
        changes=changes,
    )


def _apply_changes(
    order: Order,
    changes: list[LineChange],
    current: dict[str, _CurrentLine],
    event_type: OrderEventType,
    audit: Audit,
    *,
    status_changed: bool = False,
) -> Order:
    """Write the new line quantities, bump the version once, and record ledger + outbox.
    A quantity command with no changes is a no-op; a status change always records."""
    if not changes and not status_changed:
        return order
    updated, created = {}, {}
    for change in changes:
        line_id = current[change.sku].line_id
        if line_id is None:
            created[(order.pk, change.product_id)] = change.after
        else:
            updated[line_id] = change.after
    if event_type == OrderEventType.QUANTITY_ADJUSTED:
        order_stock_apply(
            order=order,
            deltas={c.product_id: c.delta for c in changes if current[c.sku].tracked},
            audit=audit,
        )
    order.version += 1
    order_changes_write(
        events=[_event(order, event_type, changes)],
        updated_lines=updated,
        new_lines=created,
        audit=audit,
        now=timezone.now(),
    )
    return order
