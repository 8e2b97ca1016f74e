"""The one write path for orders. The admin, the API, management commands and tests all
call these functions. Each turns its input into order commands for `orders.planner`, which
checks them, reserves stock and records them; what is left here is each door's policy:
a single command raises its refusal, a bulk request reports each item or refuses the whole
batch."""

from collections.abc import Mapping, Sequence

from django.db import transaction

from config.errors import DomainError, DomainValidationError, ErrorCode, InsufficientStock
from config.tracing import traced
from history.audit import Audit, reason_code_check
from orders.models import Customer, Order, OrderStatus
from orders.planner import (
    LineRequest,
    OrderCommand,
    Outcome,
    OutcomeStatus,
    Plan,
    order_commands_plan,
)

MAX_BULK_ITEMS = 1000


@traced
def customer_create(*, name: str, email: str = "") -> Customer:
    return Customer.objects.create(name=name, email=email)


@traced
def order_create(
    *,
    customer_id: int | None,
    reference: str,
    lines: Mapping[str, int],
    audit: Audit,
) -> Order:
    """Create an order with its lines (sku -> quantity), reserving tracked stock."""
    reason_code_check(audit)
    if not lines:
        raise DomainValidationError("An order needs at least one line.", field="lines")
    if customer_id is not None and not Customer.objects.filter(pk=customer_id).exists():
        raise DomainValidationError(f"Customer {customer_id} does not exist.", field="customer")
    with transaction.atomic():
        plan, order = Plan.created(customer_id=customer_id, reference=reference, quantities=lines)
        plan.reserve_stock(audit=audit, atomic=True)
        plan.record(audit=audit)
    return order


@traced
def order_set_quantities(
    *,
    order_id: int,
    quantities: Mapping[str, int],
    expected_version: int | None = None,
    audit: Audit,
) -> Order:
    """Set absolute line quantities; a sku not yet on the order adds a line. Unchanged
    lines are skipped, and a command that changes nothing bumps no version."""
    lines = [LineRequest(sku, quantity=quantity) for sku, quantity in quantities.items()]
    return _order_command(OrderCommand(order_id, lines, expected_version), audit)


@traced
def order_adjust(
    *,
    order_id: int,
    deltas: Mapping[str, int],
    expected_version: int | None = None,
    audit: Audit,
) -> Order:
    """Apply signed deltas to line quantities; the result must stay within range."""
    lines = [LineRequest(sku, delta=delta) for sku, delta in deltas.items()]
    return _order_command(OrderCommand(order_id, lines, expected_version), audit)


@traced
def order_cancel(*, order_id: int, expected_version: int | None = None, audit: Audit) -> Order:
    """Cancel the order: every line goes to zero (recorded as `order.cancelled` rows), its
    stock is released, and it can no longer be changed."""
    command = OrderCommand(order_id, expected_version=expected_version, close=OrderStatus.CANCELLED)
    return _order_command(command, audit)


@traced
def order_fulfil(*, order_id: int, expected_version: int | None = None, audit: Audit) -> Order:
    """Fulfil the order: its reservations are consumed (stock leaves on_hand) and it can
    no longer be changed. Recorded as `order.fulfilled` rows with unchanged quantities."""
    command = OrderCommand(order_id, expected_version=expected_version, close=OrderStatus.FULFILLED)
    return _order_command(command, audit)


def _order_command(command: OrderCommand, audit: Audit) -> Order:
    reason_code_check(audit)
    with transaction.atomic():
        plan = order_commands_plan([command])
        (outcome,) = plan.outcomes
        if outcome.error is not None:
            raise outcome.error
        plan.reserve_stock(audit=audit, atomic=True)
        plan.record(audit=audit)
    return plan.orders[command.order_id].instance()


class BatchRejected(DomainError):
    """An atomic batch with failing items: nothing was written. `errors` holds one entry
    per failing item (its index, a JSON pointer into the request, and its problem). The
    status is 400 when an item names an order or sku that does not exist, 412 when every
    failure is a version conflict, else 409."""

    code = ErrorCode.BATCH_REJECTED
    title = "Batch refused"

    def __init__(self, outcomes: Sequence[Outcome]):
        failed = [(i, o.error) for i, o in enumerate(outcomes) if o.error is not None]
        statuses = {error.status for _, error in failed}
        if statuses & {400, 404}:
            self.status = 400
        elif statuses == {412}:
            self.status = 412
        else:
            self.status = 409
        first_index, first = failed[0]
        super().__init__(
            f"{len(failed)} of {len(outcomes)} items cannot be applied, so none was "
            f"(atomic batch). First: item {first_index}: {first.detail}",
            errors=[
                {
                    "index": index,
                    "attr": f"items.{index}",
                    "pointer": f"#/items/{index}",
                    **error.problem(),
                }
                for index, error in failed
            ],
        )


@traced
def order_adjustments_bulk(
    *, commands: Sequence[OrderCommand], atomic: bool, audit: Audit
) -> list[Outcome]:
    """Apply up to MAX_BULK_ITEMS commands in one transaction, in a number of statements
    that does not grow with their number, and return one outcome per command, in input
    order. Each is planned exactly as if it had come alone, seeing what the commands before
    it left (see orders.planner). Tracked stock is reserved or released once per order,
    for the net change of its applied commands; if that is refused, every command of that
    order is refused with `insufficient_stock`.

    Not atomic: refused commands write nothing, the others are applied. Atomic: if any
    command is refused, BatchRejected is raised and nothing at all is written."""
    reason_code_check(audit)
    if len(commands) > MAX_BULK_ITEMS:
        raise DomainValidationError(
            f"At most {MAX_BULK_ITEMS} items per batch, not {len(commands)}.", field="items"
        )
    if not commands:
        return []
    with transaction.atomic():
        plan = order_commands_plan(commands)
        if atomic and any(o.status == OutcomeStatus.REFUSED for o in plan.outcomes):
            raise BatchRejected(plan.outcomes)
        try:
            plan.reserve_stock(audit=audit, atomic=atomic)
        except InsufficientStock as exc:
            raise BatchRejected(plan.outcomes) from exc
        plan.record(audit=audit)
    return plan.outcomes
