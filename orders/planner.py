"""The order-command planner: the one place where order commands are checked and turned
into recorded changes, for a single change (API, admin) and for every item of a bulk
request alike.

A command names an order, the version its caller saw (optional), and either the line
changes it asks for (each an absolute quantity or a signed delta) or the status it closes
the order with (cancelled, fulfilled). `order_commands_plan` locks every order of the
batch in one statement (id order), reads their lines and the named products in one more,
and works the commands out in input order, each seeing the state the ones before it left.
For each command, in this order: the order exists (404), the expected version matches
(412), the order is open (409), every sku exists (400), every new quantity is within
0..MAX_LINE_QUANTITY (409). A refused command changes nothing; a command that changes no
quantity is unchanged and records nothing; an applied one bumps its order's version by one
and becomes one event.

`Plan.reserve_stock` then reserves or releases the stock of tracked products (one lock
order for the whole batch, taken by `inventory.services.order_stock_lock`), and
`Plan.record` writes the new state, one ledger row per changed line and one outbox event
per applied command through `history.recorder`, in one statement. The services in
`orders.services` add only their policy: a single command raises its refusal; a bulk
request reports each item, or refuses the whole batch.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    UnknownSku,
    VersionConflict,
)
from config.sql import fetch_all
from history.audit import Audit
from history.chain import GENESIS
from history.events import Event, LineChange, order_event_data
from history.models import OrderEventType
from history.recorder import ChainHeads, StateWrite, changes_record
from inventory.models import Product
from inventory.services import (
    order_stock_apply,
    order_stock_consume,
    order_stock_lock,
    order_stock_release,
)
from orders.models import MAX_LINE_QUANTITY, Order, OrderLine, OrderStatus


@dataclass(slots=True)
class LineRequest:
    """Set one sku's line to `quantity`, or change it by `delta`: exactly one of the two.
    A sku not on the order yet starts from 0 (a new line)."""

    sku: str
    quantity: int | None = None
    delta: int | None = None


@dataclass(slots=True)
class OrderCommand:
    """One command on one order: change `lines` (distinct skus), or `close` the order as
    cancelled or fulfilled. `expected_version` is the order's version the caller saw."""

    order_id: int
    lines: Sequence[LineRequest] = ()
    expected_version: int | None = None
    close: OrderStatus | None = None


class OutcomeStatus(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    REFUSED = "refused"


@dataclass(slots=True)
class Outcome:
    """What became of one command. `lines` are its requested lines, before and after;
    `version` is the version it produced (applied) or found (unchanged). An applied command
    becomes an event of `event_type` recording `changes`, after which the order is
    `order_status`."""

    command: OrderCommand
    status: OutcomeStatus
    version: int | None = None
    lines: Sequence[LineChange] = ()
    error: DomainError | None = None
    event_type: str = ""
    changes: Sequence[LineChange] = ()
    order_status: str = ""

    def refuse(self, error: DomainError) -> None:
        self.status, self.error, self.version = OutcomeStatus.REFUSED, error, None
        self.lines = self.changes = ()


@dataclass(slots=True)
class _Order:
    """An order as the batch has left it so far."""

    id: int
    version: int
    status: str
    reference: str
    customer_id: int | None
    ledger_head: bytes = GENESIS  # the hash chain's head, as locked
    lines: dict[int, "_Line"] = field(default_factory=dict)  # product id -> line

    def instance(self) -> Order:
        # from_db takes the values in the model's field order.
        return Order.from_db(
            connection.alias,
            ["id", "customer_id", "reference", "status", "version"],
            [self.id, self.customer_id, self.reference, self.status, self.version],
        )


@dataclass(slots=True)
class _Line:
    line_id: int | None  # None: a line this batch adds
    quantity: int
    changed: bool = False


# Plain SQL: with the ORM, building and converting these statements cost more than running
# them. Every statement has one text whatever the batch size (arrays as single parameters).
_LOCK_ORDERS = (
    f"SELECT id, version, status, reference, customer_id, ledger_head FROM "
    f"{Order._meta.db_table} "
    "WHERE id {ids} ORDER BY id FOR UPDATE"
)
# The named products, with their lines on the orders being changed; every line (with its
# product) of the orders being closed. Both lock the products FOR KEY SHARE, as the ledger's
# foreign key will anyway, only earlier: a product's flags cannot change under a command
# that read them (inventory.services.product_update locks the product FOR UPDATE).
_NAMED_LINES = f"""\
SELECT p.sku, p.id, p.track_inventory, l.order_id, l.id, l.quantity
FROM {Product._meta.db_table} AS p
LEFT JOIN {OrderLine._meta.db_table} AS l ON l.product_id = p.id AND l.order_id {{ids}}
WHERE p.sku = ANY(%s) ORDER BY l.id FOR KEY SHARE OF p"""
_ALL_LINES = f"""\
SELECT p.sku, p.id, p.track_inventory, l.order_id, l.id, l.quantity
FROM {OrderLine._meta.db_table} AS l JOIN {Product._meta.db_table} AS p ON p.id = l.product_id
WHERE l.order_id {{ids}} ORDER BY l.id FOR KEY SHARE OF p"""
_WRITE_ORDERS = (
    f"UPDATE {Order._meta.db_table} AS o SET version = v.version, status = v.status, "
    "ledger_head = v.head, updated_at = %s FROM unnest(%s::bigint[], %s::integer[], "
    "%s::text[], %s::bytea[]) AS v(id, version, status, head) WHERE o.id = v.id"
)
_WRITE_LINES = (
    f"UPDATE {OrderLine._meta.db_table} AS l SET quantity = v.quantity "
    "FROM unnest(%s::bigint[], %s::integer[]) AS v(id, quantity) WHERE l.id = v.id"
)
_ADD_LINES = (
    f"INSERT INTO {OrderLine._meta.db_table} (order_id, product_id, quantity) "
    "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::integer[])"
)


def _one_or_any(ids: list[int]) -> tuple[str, object]:
    """The condition on order ids and its parameter: `= %s` for one order, `= ANY(%s)` for
    a batch. PostgreSQL plans a prepared `= ANY(array)` statement for ten values, finds
    that dearer than planning it afresh for the one at hand, and so plans it again at every
    run: 45 us more per single command than `= %s` (measured on the lines read)."""
    return ("= %s", ids[0]) if len(ids) == 1 else ("= ANY(%s)", ids)


def check_shape(commands: Sequence[OrderCommand]) -> None:
    """Refuse the whole call (400) when a line asks for both a quantity and a delta, or
    for neither: that is a malformed request, not a command that can fail."""
    for index, command in enumerate(commands):
        for line in command.lines:
            if (line.quantity is None) == (line.delta is None):
                raise DomainValidationError(
                    "Give either quantity or delta, not both and not neither.",
                    field=f"items.{index}.quantity",
                    code=ErrorCode.QUANTITY_OR_DELTA,
                )


def order_commands_plan(commands: Sequence[OrderCommand]) -> "Plan":
    """Lock the batch's orders, read what the commands need (two statements in all, three
    when one batch both changes and closes orders) and work out every command. Runs
    inside the caller's transaction."""
    check_shape(commands)
    order_ids = sorted({command.order_id for command in commands})
    ids, param = _one_or_any(order_ids)
    orders = {row[0]: _Order(*row) for row in fetch_all(_LOCK_ORDERS.format(ids=ids), [param])}
    plan = Plan(orders=orders, products=_read_lines(commands, orders))
    for command in commands:
        plan.outcomes.append(plan._work_out(command))
    return plan


def _read_lines(commands, orders: dict[int, _Order]) -> dict[str, tuple[int, bool]]:
    """Fill in the open orders' lines; return sku -> (product id, tracked) for the named
    skus that exist and the products on the closed orders' lines."""
    open_ids = {order.id for order in orders.values() if order.status == OrderStatus.OPEN}
    changing = {c.order_id for c in commands if c.lines and c.order_id in open_ids}
    closing = {c.order_id for c in commands if c.close and c.order_id in open_ids}
    skus = {line.sku for c in commands if c.order_id in changing for line in c.lines}
    if not skus and not closing:
        return {}
    products: dict[str, tuple[int, bool]] = {}
    rows = []
    if skus:
        ids, param = _one_or_any(sorted(changing))
        rows += fetch_all(_NAMED_LINES.format(ids=ids), [param, sorted(skus)])
    if closing:  # a batch that closes orders too (never a bulk request) reads twice
        ids, param = _one_or_any(sorted(closing))
        rows += fetch_all(_ALL_LINES.format(ids=ids), [param])
    for sku, product_id, tracked, order_id, line_id, quantity in rows:
        if sku not in products:
            products[sku] = (product_id, tracked)
        if line_id is not None:
            orders[order_id].lines[product_id] = _Line(line_id, quantity)
    return products


@dataclass
class Plan:
    orders: dict[int, _Order]
    products: dict[str, tuple[int, bool]]  # sku -> (product id, tracked)
    outcomes: list[Outcome] = field(default_factory=list)
    applied: list[Outcome] = field(default_factory=list)  # in order, waiting to be recorded
    now: datetime = field(default_factory=timezone.now)  # the commands' time

    def __post_init__(self) -> None:
        self._by_id = {pid: (sku, tracked) for sku, (pid, tracked) in self.products.items()}

    @classmethod
    def created(
        cls, *, customer_id: int | None, reference: str, quantities: Mapping[str, int]
    ) -> tuple["Plan", Order]:
        """Check the lines of a new order like any other command (raising the refusal),
        insert its row at version 1, and plan its `order.created` event: every line from
        0. Runs inside the caller's transaction."""
        lines = [LineRequest(sku, quantity=quantity) for sku, quantity in quantities.items()]
        plan = cls(orders={}, products=_products(quantities))
        state = _Order(0, 1, OrderStatus.OPEN, reference, customer_id)
        changes = plan._changes(state, OrderCommand(0, lines))
        order = Order.objects.create(
            customer_id=customer_id, reference=reference, created_at=plan.now, updated_at=plan.now
        )
        state.id = order.pk
        plan.orders[order.pk] = state
        command = OrderCommand(order.pk, lines)
        plan.outcomes.append(Outcome(command, OutcomeStatus.APPLIED, lines=changes))
        plan._apply(state, plan.outcomes[0], OrderEventType.CREATED, changes)
        return plan, order

    def _work_out(self, command: OrderCommand) -> Outcome:
        outcome = Outcome(command, OutcomeStatus.REFUSED)
        try:
            order = self._editable(command)
            if command.close:
                outcome.lines = [
                    LineChange(pid, self._by_id[pid][0], line.quantity, _closed(line, command))
                    for pid, line in order.lines.items()
                ]
                changes = outcome.lines
                event_type = _CLOSING_EVENTS[command.close]
            else:
                outcome.lines = self._changes(order, command)
                changes = [change for change in outcome.lines if change.after != change.before]
                event_type = OrderEventType.QUANTITY_ADJUSTED
        except DomainError as exc:
            outcome.refuse(exc)
            return outcome
        if not changes and not command.close:
            outcome.status, outcome.version = OutcomeStatus.UNCHANGED, order.version
            return outcome
        outcome.status = OutcomeStatus.APPLIED
        order.status = command.close or order.status
        order.version += 1
        self._apply(order, outcome, event_type, changes)
        return outcome

    def _editable(self, command: OrderCommand) -> _Order:
        order = self.orders.get(command.order_id)
        if order is None:
            raise NotFound("Order", command.order_id)
        if command.expected_version is not None and command.expected_version != order.version:
            raise VersionConflict(expected=command.expected_version, current=order.version)
        if order.status != OrderStatus.OPEN:
            raise OrderNotEditable(f"Order {order.id} is {order.status} and cannot be changed.")
        return order

    def _changes(self, order: _Order, command: OrderCommand) -> list[LineChange]:
        """Each requested line before and after; refuses the whole command on an unknown
        sku or a quantity out of range."""
        products = self.products
        for request in command.lines:
            if request.sku not in products:
                unknown = [line.sku for line in command.lines if line.sku not in products]
                raise UnknownSku(unknown, field="lines")
        changes = []
        for request in command.lines:
            product_id = products[request.sku][0]
            line = order.lines.get(product_id)
            before = line.quantity if line else 0
            after = request.quantity if request.delta is None else before + request.delta
            if not 0 <= after <= MAX_LINE_QUANTITY:
                raise _out_of_range(request, before, after)
            changes.append(LineChange(product_id, request.sku, before, after))
        return changes

    def _apply(self, order: _Order, outcome: Outcome, event_type: str, changes) -> None:
        """The command's changes become the order's state; its event waits to be recorded."""
        for change in changes:
            line = order.lines.get(change.product_id)
            if line is None:
                line = order.lines[change.product_id] = _Line(None, 0)
            line.quantity, line.changed = change.after, True
        outcome.version, outcome.order_status = order.version, order.status
        outcome.event_type, outcome.changes = event_type, changes
        self.applied.append(outcome)

    def reserve_stock(self, *, audit: Audit, atomic: bool) -> None:
        """Reserve or release the net change of each order's tracked lines, release the
        stock of cancelled orders and consume that of fulfilled ones. Every stock lock of
        the batch is taken first, in one fixed order. Atomic: a refusal (InsufficientStock)
        is raised. Not atomic: each order in a savepoint, and a refusal refuses only that
        order's commands."""
        deltas: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        closing: dict[int, str] = {}
        for applied in self.applied:
            order_id = applied.command.order_id
            if applied.order_status != OrderStatus.OPEN:
                closing[order_id] = applied.order_status
                continue
            for change in applied.changes:
                if self._by_id[change.product_id][1]:
                    deltas[order_id][change.product_id] += change.delta
        deltas = {
            order_id: nonzero
            for order_id, by_product in deltas.items()
            if (nonzero := {pid: delta for pid, delta in by_product.items() if delta})
        }
        order_ids = sorted({*deltas, *closing})
        if not order_ids:
            return
        closing_products = {
            pid
            for order_id in closing
            for pid in self.orders[order_id].lines
            if self._by_id[pid][1]
        }
        order_stock_lock(
            order_ids=order_ids,
            product_ids=sorted(closing_products | {p for d in deltas.values() for p in d}),
        )
        for order_id in order_ids:
            order = self.orders[order_id].instance()
            try:
                with transaction.atomic(savepoint=not atomic):
                    if order_id in deltas:
                        order_stock_apply(order=order, deltas=deltas[order_id], audit=audit)
                    if closing.get(order_id) == OrderStatus.CANCELLED:
                        order_stock_release(order=order, audit=audit)
                    elif closing.get(order_id) == OrderStatus.FULFILLED:
                        order_stock_consume(order=order, audit=audit)
            except InsufficientStock as exc:
                self._refuse_order(order_id, exc)
                if atomic:
                    raise

    def _refuse_order(self, order_id: int, error: DomainError) -> None:
        for outcome in self.outcomes:
            if outcome.command.order_id == order_id and outcome.status != OutcomeStatus.REFUSED:
                outcome.refuse(error)
        self.applied = [o for o in self.applied if o.status == OutcomeStatus.APPLIED]

    def record(self, *, audit: Audit) -> None:
        """Write the applied commands: the orders' new versions and statuses, the new and
        changed lines, one ledger row per changed line and one outbox event per command,
        in one statement."""
        if not self.applied:
            return
        now = self.now
        recorded = [self.orders[o] for o in sorted({a.command.order_id for a in self.applied})]
        changed_lines, added_lines = {}, {}
        for order in recorded:
            for product_id, line in order.lines.items():
                if line.line_id is None:
                    added_lines[(order.id, product_id)] = line.quantity
                elif line.changed:
                    changed_lines[line.line_id] = line.quantity
        heads = {("order", order.id): bytes(order.ledger_head) for order in recorded}
        state = [
            StateWrite(
                _WRITE_ORDERS,
                [
                    now,
                    [order.id for order in recorded],
                    [order.version for order in recorded],
                    [order.status for order in recorded],
                    ChainHeads(list(heads)),
                ],
            )
        ]
        if changed_lines:
            state.append(
                StateWrite(_WRITE_LINES, [list(changed_lines), list(changed_lines.values())])
            )
        if added_lines:
            orders, products = [o for o, _ in added_lines], [p for _, p in added_lines]
            state.append(StateWrite(_ADD_LINES, [orders, products, list(added_lines.values())]))
        events = [self._event(applied, audit, now) for applied in self.applied]
        changes_record(events=events, audit=audit, now=now, state=state, heads=heads)

    def _event(self, applied: Outcome, audit: Audit, now: datetime) -> Event:
        order = self.orders[applied.command.order_id]
        return Event(
            aggregate_type="order",
            aggregate_id=str(order.id),
            version=applied.version,
            event_type=applied.event_type,
            lines=applied.changes,
            payload=order_event_data(
                order_id=order.id,
                version=applied.version,
                status=applied.order_status,
                reference=order.reference,
                customer_id=order.customer_id,
                changes=applied.changes,
                audit=audit,
                occurred_at=now,
            ),
        )


_CLOSING_EVENTS = {
    OrderStatus.CANCELLED: OrderEventType.CANCELLED,
    OrderStatus.FULFILLED: OrderEventType.FULFILLED,
}


def _closed(line: _Line, command: OrderCommand) -> int:
    """A cancelled order's lines go to zero; a fulfilled order's keep their quantity."""
    return 0 if command.close == OrderStatus.CANCELLED else line.quantity


def _products(skus) -> dict[str, tuple[int, bool]]:
    rows = Product.objects.filter(sku__in=list(skus)).values_list("sku", "id", "track_inventory")
    return {sku: (product_id, tracked) for sku, product_id, tracked in rows}


def _out_of_range(request: LineRequest, before: int, after: int) -> QuantityOutOfRange:
    if request.delta is None:
        what = f"{request.sku} cannot be set to {after}"
    else:
        what = (
            f"Adjusting {request.sku} by {request.delta:+d} would take it from {before} to {after}"
        )
    return QuantityOutOfRange(
        f"{what}; a quantity must stay between 0 and {MAX_LINE_QUANTITY}.",
        sku=request.sku,
        quantity=before,
    )
