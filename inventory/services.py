"""The one write path for stock. Every command runs in one transaction that locks the
stock levels it touches (always in primary-key order, after the aggregate root it works
for: order, reservation or transfer), and ends by recording the new quantities, one stock
ledger row per level and one outbox event (`history.recorder`). Stock is never oversold:
a take beyond `available` is refused with InsufficientStock, unless the product allows
backorders, in which case the shortfall is recorded as backorder."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from config.errors import (
    CountBelowReserved,
    DomainValidationError,
    ErrorCode,
    InsufficientStock,
    NotFound,
    ProductInUse,
    ReservationBelongsToOrder,
    ReservationNotActive,
    TransferNotInTransit,
    UnknownSku,
)
from config.tracing import traced
from history.audit import Audit, reason_code_check
from history.events import Event, StockChange, stock_event_data
from history.models import Source, StockEventType, StockMovementType
from history.recorder import ChainHeads, StateWrite, changes_record
from inventory.models import (
    MAX_STOCK_QUANTITY,
    RESERVED_STOCK_PATHS,
    Location,
    LocationType,
    Product,
    Reservation,
    ReservationAllocation,
    ReservationStatus,
    StockLevel,
    Transfer,
    TransferStatus,
)

M = StockMovementType

# A reservation holds stock for a week at most, whether it is given a TTL or an expiry time.
MAX_RESERVATION_TTL_SECONDS = 7 * 24 * 60 * 60


@traced
def product_create(
    *, sku: str, name: str, track_inventory: bool = True, allow_backorder: bool = False
) -> Product:
    if sku in RESERVED_STOCK_PATHS:
        raise DomainValidationError(
            f"{sku} names a stock route (/api/v1/stock/{sku}/) and cannot be a sku.", field="sku"
        )
    try:
        with transaction.atomic():
            return Product.objects.create(
                sku=sku, name=name, track_inventory=track_inventory, allow_backorder=allow_backorder
            )
    except IntegrityError as exc:
        raise DomainValidationError(
            f"A product with sku {sku} already exists.", field="sku"
        ) from exc


@traced
def product_update(
    *,
    sku: str,
    audit: Audit,
    name: str | None = None,
    track_inventory: bool | None = None,
    allow_backorder: bool | None = None,
) -> Product:
    """Change a product's name or flags (None: leave as is), recorded as one
    `product.updated` event. The flags decide how orders reserve and consume stock, so a
    flag may not change while an open order has a line on the product or a reservation
    holds it (ProductInUse): turned off under a reservation, or on under an untracked open
    line, tracking would later consume stock that was never reserved, or none at all."""
    with transaction.atomic():
        # FOR UPDATE waits for every command that read the product (they hold it FOR KEY
        # SHARE) and holds back those that would read it next.
        product = Product.objects.select_for_update().filter(sku=sku).first()
        if product is None:
            raise NotFound("Product", sku)
        wanted = {
            "name": name,
            "track_inventory": track_inventory,
            "allow_backorder": allow_backorder,
        }
        changes = {
            field: {"before": getattr(product, field), "after": value}
            for field, value in wanted.items()
            if value is not None and value != getattr(product, field)
        }
        if not changes:
            return product
        if changes.keys() & {"track_inventory", "allow_backorder"}:
            _refuse_if_in_use(product)
        for field, change in changes.items():
            setattr(product, field, change["after"])
        product.version += 1
        product.save(update_fields=[*changes, "version"])
        now = timezone.now()
        event = Event(
            aggregate_type="product",
            aggregate_id=product.sku,
            version=product.version,
            event_type=StockEventType.PRODUCT_UPDATED,
            payload={
                "sku": product.sku,
                "aggregate_version": product.version,
                "changes": changes,
                "actor": audit.actor,
                "source": str(audit.source),
                "reason": audit.reason,
                "reason_code": audit.recorded_reason_code,
                "correlation_id": audit.correlation_id,
                "occurred_at": now.isoformat(),
            },
        )
        changes_record(events=[event], audit=audit, now=now)
        return product


def _refuse_if_in_use(product: Product) -> None:
    reservations = Reservation.objects.filter(product=product, status=ReservationStatus.ACTIVE)
    open_lines = product.order_lines.filter(order__status="open", quantity__gt=0)
    held = reservations.count()
    ordered = open_lines.values("order_id").distinct().count()
    if held or ordered:
        raise ProductInUse(
            f"{product.sku}'s stock flags cannot change while {ordered} open order(s) have "
            f"a line on it and {held} reservation(s) hold it: fulfil, cancel or release "
            "them first.",
            open_orders=ordered,
            active_reservations=held,
        )


@traced
def location_create(
    *,
    code: str,
    name: str,
    type: LocationType = LocationType.WAREHOUSE,
    address: str = "",
    active: bool = True,
    priority: int = 100,
) -> Location:
    try:
        with transaction.atomic():
            return Location.objects.create(
                code=code, name=name, type=type, address=address, active=active, priority=priority
            )
    except IntegrityError as exc:
        raise DomainValidationError(
            f"A location with code {code} already exists.", field="code"
        ) from exc


# --- Stock movements at one place -------------------------------------------------------


@traced
def stock_receive(*, sku: str, location: str, quantity: int, audit: Audit) -> StockLevel:
    """Add stock. Units still owed by earlier backordered issues are issued from it first."""
    reason_code_check(audit, movement=M.RECEIVE)
    _check_positive(quantity, "quantity")
    with transaction.atomic():
        level = _lock_place(sku, location)
        owed = _owed_by_issues(level, quantity)
        moves = _Moves()
        moves.add(level, M.RECEIVE, on_hand=quantity - owed, backorder=-owed)
        return moves.write_single(StockEventType.RECEIVED, audit, extra={"backorder_filled": owed})


@traced
def stock_issue(*, sku: str, location: str, quantity: int, audit: Audit) -> StockLevel:
    """Remove available stock (reserved units cannot be issued). For a product that allows
    backorders the part that is not available is recorded as backorder and filled from the
    next receipt at this location."""
    reason_code_check(audit, movement=M.ISSUE)
    _check_positive(quantity, "quantity")
    with transaction.atomic():
        level = _lock_place(sku, location)
        available = level.on_hand - level.reserved
        short = max(0, quantity - available)
        if short and not level.product.allow_backorder:
            raise InsufficientStock(
                sku=sku, requested=quantity, available=available, location=location
            )
        moves = _Moves()
        moves.add(level, M.ISSUE, on_hand=-(quantity - short), backorder=short)
        return moves.write_single(StockEventType.ISSUED, audit)


@traced
def stock_adjust(*, sku: str, location: str, delta: int, audit: Audit) -> StockLevel:
    reason_code_check(audit, movement=M.ADJUST)
    if delta == 0 or abs(delta) > MAX_STOCK_QUANTITY:
        raise DomainValidationError(
            f"delta must be a non-zero integer within ±{MAX_STOCK_QUANTITY}.", field="delta"
        )
    with transaction.atomic():
        level = _lock_place(sku, location)
        available = level.on_hand - level.reserved
        if -delta > available:
            raise InsufficientStock(
                sku=sku, requested=-delta, available=available, location=location
            )
        moves = _Moves()
        moves.add(level, M.ADJUST, on_hand=delta)
        return moves.write_single(StockEventType.ADJUSTED, audit)


@traced
def stock_count(*, sku: str, location: str, counted: int, audit: Audit) -> StockLevel:
    """Set on_hand from a physical count; the difference is recorded as a count movement
    (also when it is zero, so the count itself is on record)."""
    reason_code_check(audit, movement=M.COUNT)
    if not 0 <= counted <= MAX_STOCK_QUANTITY:
        raise DomainValidationError(
            f"counted must be between 0 and {MAX_STOCK_QUANTITY}.", field="counted"
        )
    with transaction.atomic():
        level = _lock_place(sku, location)
        if counted < level.reserved:
            raise CountBelowReserved(
                f"Counted {counted} of {sku} at {location}, but {level.reserved} are reserved. "
                "Release or move reservations first.",
                reserved=level.reserved,
            )
        moves = _Moves()
        moves.add(level, M.COUNT, on_hand=counted - level.on_hand)
        return moves.write_single(StockEventType.COUNTED, audit, extra={"counted": counted})


@traced
def stock_set_thresholds(
    *, sku: str, location: str, reorder_point: int, safety_stock: int, audit: Audit
) -> StockLevel:
    reason_code_check(audit)
    for name, value in (("reorder_point", reorder_point), ("safety_stock", safety_stock)):
        if not 0 <= value <= MAX_STOCK_QUANTITY:
            raise DomainValidationError(
                f"{name} must be between 0 and {MAX_STOCK_QUANTITY}.", field=name
            )
    with transaction.atomic():
        level = _lock_place(sku, location)
        level.reorder_point, level.safety_stock = reorder_point, safety_stock
        now = timezone.now()
        low = _low_crossings([level], audit, now)
        level.save(update_fields=["reorder_point", "safety_stock", "is_low", "updated_at"])
        changes_record(events=low, audit=audit, now=now)
        return level


# --- Transfers ------------------------------------------------------------------------------


@traced
def transfer_create(
    *, sku: str, from_location: str, to_location: str, quantity: int, audit: Audit
) -> Transfer:
    """Ship stock: it leaves the source at once and shows as in transit at the destination."""
    reason_code_check(audit, movement=M.TRANSFER_OUT)
    _check_positive(quantity, "quantity")
    if from_location == to_location:
        raise DomainValidationError(
            "A transfer needs two different locations.", field="to_location"
        )
    with transaction.atomic():
        product = _product(sku)
        source = _location(from_location, "from_location")
        destination = _location(to_location, "to_location")
        levels = _lock_levels(product, [source, destination])
        out, incoming = levels[source.pk], levels[destination.pk]
        available = out.on_hand - out.reserved
        if quantity > available:
            raise InsufficientStock(
                sku=sku, requested=quantity, available=available, location=from_location
            )
        now = timezone.now()
        transfer = Transfer.objects.create(
            product=product,
            from_location=source,
            to_location=destination,
            quantity=quantity,
            reason=audit.reason,
            created_at=now,
            updated_at=now,
        )
        moves = _Moves()
        moves.add(out, M.TRANSFER_OUT, on_hand=-quantity)
        moves.add(incoming, M.TRANSFER_INCOMING, in_transit=quantity)
        moves.write(
            StockEventType.TRANSFER_SHIPPED, audit, aggregate=("transfer", transfer), now=now
        )
        return transfer


@traced
def transfer_receive(*, transfer_id: int, audit: Audit) -> Transfer:
    return _transfer_finish(transfer_id, audit, received=True)


@traced
def transfer_cancel(*, transfer_id: int, audit: Audit) -> Transfer:
    return _transfer_finish(transfer_id, audit, received=False)


def _transfer_finish(transfer_id: int, audit: Audit, *, received: bool) -> Transfer:
    reason_code_check(audit, movement=M.TRANSFER_IN if received else M.TRANSFER_CANCEL)
    with transaction.atomic():
        transfer = (
            Transfer.objects.select_for_update(of=("self",))
            .select_related("product", "from_location", "to_location")
            .filter(pk=transfer_id)
            .first()
        )
        if transfer is None:
            raise NotFound("Transfer", transfer_id)
        if transfer.status != TransferStatus.IN_TRANSIT:
            raise TransferNotInTransit(f"Transfer {transfer_id} is already {transfer.status}.")
        levels = _lock_levels(transfer.product, [transfer.from_location, transfer.to_location])
        moves = _Moves()
        incoming = levels[transfer.to_location_id]
        if received:
            owed = _owed_by_issues(incoming, transfer.quantity)
            moves.add(
                incoming,
                M.TRANSFER_IN,
                in_transit=-transfer.quantity,
                on_hand=transfer.quantity - owed,
                backorder=-owed,
            )
            transfer.status = TransferStatus.RECEIVED
        else:
            moves.add(
                levels[transfer.from_location_id], M.TRANSFER_CANCEL, on_hand=transfer.quantity
            )
            moves.add(incoming, M.TRANSFER_CANCEL, in_transit=-transfer.quantity)
            transfer.status = TransferStatus.CANCELLED
        now = timezone.now()
        transfer.version += 1
        transfer.updated_at = now
        transfer.save(update_fields=["status", "version", "updated_at"])
        event = StockEventType.TRANSFER_RECEIVED if received else StockEventType.TRANSFER_CANCELLED
        moves.write(event, audit, aggregate=("transfer", transfer), now=now)
        return transfer


# --- Reservations ---------------------------------------------------------------------------


@traced
def reservation_create(
    *,
    sku: str,
    quantity: int,
    audit: Audit,
    location: str | None = None,
    expires_at: datetime | None = None,
    reference: str = "",
) -> Reservation:
    """Hold stock for someone. Without a location, it is allocated across the active
    locations by priority. It expires at `expires_at` (default: RESERVATION_DEFAULT_TTL),
    which must be in the future and at most MAX_RESERVATION_TTL_SECONDS ahead."""
    reason_code_check(audit, movement=M.RESERVE)
    _check_positive(quantity, "quantity")
    with transaction.atomic():
        product = _product(sku)
        pinned = _location(location) if location else None
        now = timezone.now()
        if expires_at is None:
            expires_at = now + timedelta(seconds=settings.RESERVATION_DEFAULT_TTL_SECONDS)
        elif expires_at <= now:
            raise DomainValidationError("expires_at must be in the future.", field="expires_at")
        elif expires_at > now + timedelta(seconds=MAX_RESERVATION_TTL_SECONDS):
            raise DomainValidationError(
                f"expires_at must be at most {MAX_RESERVATION_TTL_SECONDS // 86400} days from now.",
                field="expires_at",
            )
        reservation = Reservation.objects.create(
            product=product,
            quantity=0,
            expires_at=expires_at,
            reference=reference,
            created_at=now,
            updated_at=now,
            version=0,
        )
        _reserve_more(reservation, product, quantity, audit, now, pinned=pinned)
        return reservation


@traced
def reservation_confirm(*, reservation_id: int, audit: Audit) -> Reservation:
    """Consume the reservation: on_hand and reserved both drop by its quantity."""
    reason_code_check(audit, movement=M.CONSUME)
    with transaction.atomic():
        reservation = _lock_active_reservation(reservation_id)
        _consume(reservation, audit, timezone.now())
        return reservation


@traced
def reservation_cancel(*, reservation_id: int, audit: Audit) -> Reservation:
    reason_code_check(audit, movement=M.RELEASE)
    with transaction.atomic():
        reservation = _lock_active_reservation(reservation_id)
        _release_all(reservation, ReservationStatus.CANCELLED, audit, timezone.now())
        return reservation


@traced
def reservations_expire(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Expire overdue active reservations and release their stock. Safe to run from
    several workers at once (SKIP LOCKED); returns how many expired."""
    now = now or timezone.now()
    audit = Audit(actor="system", source=Source.SYSTEM, reason="reservation expired")
    expired = 0
    while True:
        with transaction.atomic():
            overdue = list(
                Reservation.objects.select_for_update(skip_locked=True)
                .select_related("product")
                .filter(status=ReservationStatus.ACTIVE, expires_at__lte=now)
                .order_by("pk")[:batch_size]
            )
            for reservation in overdue:
                _release_all(reservation, ReservationStatus.EXPIRED, audit, now)
        expired += len(overdue)
        if len(overdue) < batch_size:
            return expired


# --- Orders reserve stock -------------------------------------------------------------------


def order_stock_lock(*, order_ids: Iterable[int], product_ids: Iterable[int]) -> None:
    """Take every stock lock that commands on these orders may need, in the one order all
    stock writers follow, after the order rows: the orders' active reservations, then every
    stock level of these products and of the reserved ones, each in primary-key order.
    Taken order by order instead, two commands could lock levels in opposite orders."""
    reserved = (
        Reservation.objects.select_for_update()
        .filter(order_id__in=list(order_ids), status=ReservationStatus.ACTIVE)
        .order_by("pk")
        .values_list("product_id", flat=True)
    )
    products = sorted({*product_ids, *reserved})
    if products:
        list(
            StockLevel.objects.select_for_update()
            .filter(product_id__in=products)
            .order_by("pk")
            .values_list("pk", flat=True)
        )


@traced
def order_stock_apply(*, order, deltas: Mapping[int, int], audit: Audit) -> None:
    """Reserve positive and release negative line deltas (product id -> delta) of tracked
    products. Runs inside the order command's transaction, after the order row lock, so a
    refusal rolls back the whole order change."""
    deltas = {pid: d for pid, d in deltas.items() if d}
    if not deltas:
        return
    order_stock_lock(order_ids=[order.pk], product_ids=deltas)
    now = timezone.now()
    reservations = {
        r.product_id: r
        for r in Reservation.objects.select_for_update(of=("self",))
        .select_related("product")
        .filter(order=order, product_id__in=deltas, status=ReservationStatus.ACTIVE)
        .order_by("pk")
    }
    products = {p.pk: p for p in Product.objects.filter(pk__in=deltas)}
    locked = _lock_levels_for_products(list(products.values()))
    active = _active_locations() if any(d > 0 for d in deltas.values()) else []
    for product_id in sorted(deltas):
        delta, product = deltas[product_id], products[product_id]
        reservation = reservations.get(product_id)
        if reservation is None:
            if delta < 0:
                continue
            reservation = Reservation.objects.create(
                product=product,
                quantity=0,
                order=order,
                reference=f"order:{order.pk}",
                created_at=now,
                updated_at=now,
                version=0,
            )
        if delta > 0:
            _reserve_more(
                reservation, product, delta, audit, now, locked=locked[product_id], active=active
            )
        else:
            _release_some(reservation, -delta, audit, now)


@traced
def order_stock_release(*, order, audit: Audit) -> None:
    """Release every active reservation of the order (it was cancelled)."""
    order_stock_lock(order_ids=[order.pk], product_ids=[])
    now = timezone.now()
    for reservation in _lock_order_reservations(order):
        _release_all(reservation, ReservationStatus.CANCELLED, audit, now)


@traced
def order_stock_consume(*, order, audit: Audit) -> None:
    """Consume every active reservation of the order (it was fulfilled)."""
    order_stock_lock(order_ids=[order.pk], product_ids=[])
    now = timezone.now()
    for reservation in _lock_order_reservations(order):
        _consume(reservation, audit, now)


# --- Internals ------------------------------------------------------------------------------


@dataclass
class _Move:
    """The net change a command makes to one stock level."""

    level: StockLevel
    movement: StockMovementType
    on_hand: int = 0
    reserved: int = 0
    in_transit: int = 0
    backorder: int = 0

    def moves_anything(self) -> bool:
        # A count is on record even when it finds nothing to correct.
        return bool(self.on_hand or self.reserved or self.in_transit or self.backorder) or (
            self.movement == M.COUNT
        )

    def applied(self) -> StockChange:
        """Apply the change to the level (in memory) and describe it for the ledger."""
        level = self.level
        level.on_hand += self.on_hand
        level.reserved += self.reserved
        level.in_transit += self.in_transit
        level.backorder += self.backorder
        level.available = level.on_hand - level.reserved
        level.version += 1
        return StockChange(
            product_id=level.product_id,
            sku=level.product.sku,
            location_id=level.location_id,
            location_code=level.location.code,
            movement=str(self.movement),
            version=level.version,
            on_hand=self.on_hand,
            reserved=self.reserved,
            in_transit=self.in_transit,
            backorder=self.backorder,
            on_hand_after=level.on_hand,
            reserved_after=level.reserved,
            in_transit_after=level.in_transit,
            backorder_after=level.backorder,
        )


@dataclass
class _Moves:
    """Net changes per stock level within one command; written as one ledger row each."""

    by_level: dict[int, _Move] = field(default_factory=dict)

    def add(self, level: StockLevel, movement, **deltas: int) -> None:
        move = self.by_level.setdefault(level.pk, _Move(level=level, movement=movement))
        for name, value in deltas.items():
            setattr(move, name, getattr(move, name) + value)

    def write(
        self, event_type, audit: Audit, *, aggregate: tuple[str, object], now: datetime, extra=None
    ) -> list[_Move]:
        """Record the moves (none: nothing is written) with one event for the command, and
        `stock.low` for every level that falls to its reorder point."""
        moves = [move for move in self.by_level.values() if move.moves_anything()]
        if not moves:
            return []
        changes = [move.applied() for move in moves]
        kind, root = aggregate
        if kind == "stock":
            aggregate_id, version = _place(root), root.version
            reference_type, reference_id = "", ""
        else:
            aggregate_id, version = str(root.pk), root.version
            reference_type, reference_id = kind, str(root.pk)
            if kind == "reservation" and root.order_id:
                reference_type, reference_id = "order", str(root.order_id)
        event = Event(
            aggregate_type=kind,
            aggregate_id=aggregate_id,
            version=version,
            event_type=event_type,
            stock=changes,
            reference_type=reference_type,
            reference_id=reference_id,
            payload=stock_event_data(
                sku=changes[0].sku,
                aggregate_version=version,
                changes=changes,
                reference_type=reference_type,
                reference_id=reference_id,
                audit=audit,
                occurred_at=now,
                extra=extra,
            ),
        )
        levels = [move.level for move in moves]
        low = _low_crossings(levels, audit, now)
        heads = {_chain_key(level): bytes(level.ledger_head) for level in levels}
        changes_record(
            events=[event, *low],
            audit=audit,
            now=now,
            state=[_levels_write(levels, now)],
            heads=heads,
        )
        return moves

    def write_single(self, event_type, audit: Audit, extra=None) -> StockLevel:
        (move,) = self.by_level.values()
        self.write(
            event_type, audit, aggregate=("stock", move.level), now=timezone.now(), extra=extra
        )
        return move.level


def _place(level: StockLevel) -> str:
    return f"{level.product.sku}@{level.location.code}"


_WRITE_LEVELS = (
    f"UPDATE {StockLevel._meta.db_table} AS s SET on_hand = v.on_hand, reserved = v.reserved, "
    "in_transit = v.in_transit, backorder = v.backorder, is_low = v.is_low, "
    "version = v.version, ledger_head = v.head, updated_at = %s "
    "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
    "%s::boolean[], %s::integer[], %s::bytea[]) "
    "AS v(id, on_hand, reserved, in_transit, backorder, is_low, version, head) "
    "WHERE s.id = v.id"
)


def _chain_key(level: StockLevel) -> tuple:
    return ("stock", level.product_id, level.location_id)


def _levels_write(levels: list[StockLevel], now: datetime) -> StateWrite:
    for level in levels:
        level.updated_at = now
    return StateWrite(
        _WRITE_LEVELS,
        [
            now,
            *(
                [getattr(level, name) for level in levels]
                for name in ("pk", "on_hand", "reserved", "in_transit", "backorder", "is_low")
            ),
            [level.version for level in levels],
            ChainHeads([_chain_key(level) for level in levels]),
        ],
    )


def _low_crossings(levels: Iterable[StockLevel], audit: Audit, now: datetime) -> list[Event]:
    """`stock.low` once when available falls to the reorder point or below; the flag is
    cleared when it rises above again, so the next fall raises it again. Updates `is_low`
    on the levels; the caller writes them."""
    events = []
    for level in levels:
        low = level.on_hand - level.reserved <= level.reorder_point
        if low and not level.is_low:
            events.append(
                Event(
                    aggregate_type="stock",
                    aggregate_id=_place(level),
                    version=level.version,
                    event_type=StockEventType.LOW,
                    payload={
                        "sku": level.product.sku,
                        "location": level.location.code,
                        "aggregate_version": level.version,
                        "available": level.on_hand - level.reserved,
                        "reorder_point": level.reorder_point,
                        "safety_stock": level.safety_stock,
                        "actor": audit.actor,
                        "occurred_at": now.isoformat(),
                    },
                )
            )
        level.is_low = low
    return events


def _owed_by_issues(level: StockLevel, arriving: int) -> int:
    """How many arriving units go straight out to fill backordered issues. The level's
    backorder also counts backordered reservations; those are settled when confirmed."""
    if not level.backorder:
        return 0
    by_reservations = (
        ReservationAllocation.objects.filter(
            location_id=level.location_id,
            reservation__product_id=level.product_id,
            reservation__status=ReservationStatus.ACTIVE,
        ).aggregate(total=Sum("backordered"))["total"]
        or 0
    )
    return min(arriving, level.backorder - by_reservations)


def _check_positive(quantity: int, name: str) -> None:
    if not 0 < quantity <= MAX_STOCK_QUANTITY:
        raise DomainValidationError(
            f"{name} must be between 1 and {MAX_STOCK_QUANTITY}.", field=name
        )


def _product(sku: str) -> Product:
    """The product, held FOR KEY SHARE until the command's transaction ends (its stock
    ledger rows would take that lock anyway): its flags cannot change under the command."""
    product = next(iter(Product.objects.raw(_PRODUCT_FOR_KEY_SHARE, [sku])), None)
    if product is None:
        raise UnknownSku([sku], field="sku")
    return product


_PRODUCT_FOR_KEY_SHARE = f"SELECT * FROM {Product._meta.db_table} WHERE sku = %s FOR KEY SHARE"


def _location(code: str, field: str = "location") -> Location:
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise DomainValidationError(
            f"Unknown location: {code}.", field=field, code=ErrorCode.UNKNOWN_LOCATION
        )
    if not location.active:
        raise DomainValidationError(
            f"Location {code} is not active.", field=field, code=ErrorCode.INACTIVE_LOCATION
        )
    return location


def _lock_levels(product: Product, locations: Iterable[Location]) -> dict[int, StockLevel]:
    """Lock (creating if needed) the product's stock levels at these locations, in pk
    order; returns location id -> level."""
    wanted = {location.pk for location in locations}
    levels = _select_levels(Q(product=product, location_id__in=wanted))
    if len(levels) < len(wanted):
        StockLevel.objects.bulk_create(
            [StockLevel(product=product, location_id=pk) for pk in wanted], ignore_conflicts=True
        )
        levels = _select_levels(Q(product=product, location_id__in=wanted))
    return {level.location_id: level for level in levels}


def _lock_levels_for_products(products: list[Product]) -> dict[int, dict[int, StockLevel]]:
    """Lock every stock level of these products, in pk order: product id -> location id ->
    level."""
    by_product: dict[int, dict[int, StockLevel]] = {p.pk: {} for p in products}
    for level in _select_levels(Q(product__in=products)):
        by_product[level.product_id][level.location_id] = level
    return by_product


def _select_levels(condition: Q) -> list[StockLevel]:
    return list(
        StockLevel.objects.select_for_update(of=("self",))
        .select_related("product", "location")
        .filter(condition)
        .order_by("pk")
    )


def _lock_place(sku: str, location: str) -> StockLevel:
    place = _location(location)
    return _lock_levels(_product(sku), [place])[place.pk]


def _lock_active_reservation(reservation_id: int) -> Reservation:
    reservation = (
        Reservation.objects.select_for_update(of=("self",))
        .select_related("product")
        .filter(pk=reservation_id)
        .first()
    )
    if reservation is None:
        raise NotFound("Reservation", reservation_id)
    if reservation.status != ReservationStatus.ACTIVE:
        raise ReservationNotActive(f"Reservation {reservation_id} is already {reservation.status}.")
    if reservation.order_id is not None:
        # Settling it behind the order's back would leave order and stock disagreeing.
        raise ReservationBelongsToOrder(
            f"Reservation {reservation_id} holds stock for order {reservation.order_id}; "
            "fulfil or cancel the order instead.",
            order=reservation.order_id,
        )
    return reservation


def _lock_order_reservations(order) -> list[Reservation]:
    return list(
        Reservation.objects.select_for_update(of=("self",))
        .select_related("product")
        .filter(order=order, status=ReservationStatus.ACTIVE)
        .order_by("pk")
    )


def _allocation_levels(
    reservation: Reservation,
) -> tuple[list[ReservationAllocation], dict[int, StockLevel]]:
    allocations = list(
        reservation.allocations.select_related("location").order_by(
            "location__priority", "location__code"
        )
    )
    levels = _lock_levels(reservation.product, [a.location for a in allocations])
    return allocations, levels


def _active_locations() -> list[Location]:
    """Allocation order: priority, then code."""
    return list(Location.objects.filter(active=True).order_by("priority", "code"))


def _reserve_more(
    reservation: Reservation,
    product: Product,
    quantity: int,
    audit: Audit,
    now: datetime,
    *,
    pinned: Location | None = None,
    locked: dict[int, StockLevel] | None = None,
    active: list[Location] | None = None,
) -> None:
    """Allocate `quantity` more to the reservation: from the pinned location, or across the
    active locations by priority. The shortfall is backordered at the first location if
    the product allows it, else InsufficientStock."""
    if pinned is not None:
        candidates = [pinned]
        levels = _lock_levels(product, candidates)
    else:
        candidates = active if active is not None else _active_locations()
        levels = locked if locked is not None else _lock_levels_for_products([product])[product.pk]
        if not candidates:
            raise InsufficientStock(sku=product.sku, requested=quantity, available=0)
    plan: list[tuple[Location, int]] = []
    remaining = quantity
    for location in candidates:
        level = levels.get(location.pk)
        take = min(remaining, level.on_hand - level.reserved) if level else 0
        if take > 0:
            plan.append((location, take))
            remaining -= take
        if not remaining:
            break
    if remaining and not product.allow_backorder:
        available = sum(
            max(0, levels[c.pk].on_hand - levels[c.pk].reserved)
            for c in candidates
            if c.pk in levels
        )
        raise InsufficientStock(
            sku=product.sku,
            requested=quantity,
            available=available,
            location=pinned.code if pinned else None,
        )
    if remaining:
        first = candidates[0]
        if first.pk not in levels:
            levels.update(_lock_levels(product, [first]))
    existing = (
        {a.location_id: a for a in reservation.allocations.all()} if reservation.quantity else {}
    )
    grown: dict[int, ReservationAllocation] = {}
    moves = _Moves()
    for location, take in plan:
        moves.add(levels[location.pk], M.RESERVE, reserved=take)
        _grow(existing, grown, reservation, location, take, 0)
    if remaining:
        moves.add(levels[candidates[0].pk], M.RESERVE, backorder=remaining)
        _grow(existing, grown, reservation, candidates[0], remaining, remaining)
    ReservationAllocation.objects.bulk_create([a for a in grown.values() if a.pk is None])
    updated = [a for a in grown.values() if a.pk is not None]
    if updated:
        ReservationAllocation.objects.bulk_update(updated, ["quantity", "backordered"])
    reservation.quantity += quantity
    _bump(reservation, now)
    moves.write(
        StockEventType.RESERVED,
        audit,
        aggregate=("reservation", reservation),
        now=now,
        extra={
            "reservation_id": reservation.pk,
            "reserved": quantity,
            "quantity": reservation.quantity,
        },
    )


def _grow(existing, grown, reservation, location, quantity: int, backordered: int) -> None:
    allocation = grown.get(location.pk) or existing.get(location.pk)
    if allocation is None:
        allocation = ReservationAllocation(
            reservation=reservation, location=location, quantity=0, backordered=0
        )
    allocation.quantity += quantity
    allocation.backordered += backordered
    grown[location.pk] = allocation


def _release_some(reservation: Reservation, quantity: int, audit: Audit, now: datetime) -> None:
    """Release part of a reservation: backordered units first, then from the
    lowest-priority location."""
    allocations, levels = _allocation_levels(reservation)
    quantity = min(quantity, reservation.quantity)
    moves = _Moves()
    remaining = quantity
    for allocation in reversed(allocations):
        if not remaining:
            break
        level = levels[allocation.location_id]
        from_backorder = min(remaining, allocation.backordered)
        from_stock = min(remaining - from_backorder, allocation.quantity - allocation.backordered)
        moves.add(level, M.RELEASE, backorder=-from_backorder, reserved=-from_stock)
        allocation.quantity -= from_backorder + from_stock
        allocation.backordered -= from_backorder
        remaining -= from_backorder + from_stock
    _save_allocations(allocations)
    reservation.quantity -= quantity
    _bump(reservation, now)
    moves.write(
        StockEventType.RESERVATION_RELEASED,
        audit,
        aggregate=("reservation", reservation),
        now=now,
        extra={
            "reservation_id": reservation.pk,
            "released": quantity,
            "quantity": reservation.quantity,
        },
    )


def _release_all(
    reservation: Reservation, status: ReservationStatus, audit: Audit, now: datetime
) -> None:
    allocations, levels = _allocation_levels(reservation)
    moves = _Moves()
    for allocation in allocations:
        moves.add(
            levels[allocation.location_id],
            M.RELEASE,
            reserved=-(allocation.quantity - allocation.backordered),
            backorder=-allocation.backordered,
        )
    reservation.status = status
    _bump(reservation, now, extra_fields=["status"])
    event = (
        StockEventType.RESERVATION_EXPIRED
        if status == ReservationStatus.EXPIRED
        else StockEventType.RESERVATION_CANCELLED
    )
    if not moves.write(
        event,
        audit,
        aggregate=("reservation", reservation),
        now=now,
        extra={"reservation_id": reservation.pk, "released": reservation.quantity},
    ):
        _reservation_event(reservation, event, audit, now, {"released": 0})


def _consume(reservation: Reservation, audit: Audit, now: datetime) -> None:
    """Confirm: backordered units must be on hand by now; then on_hand and reserved drop."""
    allocations, levels = _allocation_levels(reservation)
    moves = _Moves()
    for allocation in allocations:
        level = levels[allocation.location_id]
        available = level.on_hand - level.reserved
        if allocation.shortfall(available=available):
            raise InsufficientStock(
                sku=reservation.product.sku,
                requested=allocation.backordered,
                available=available,
                location=allocation.location.code,
            )
        moves.add(
            level,
            M.CONSUME,
            on_hand=-allocation.quantity,
            reserved=-(allocation.quantity - allocation.backordered),
            backorder=-allocation.backordered,
        )
    reservation.status = ReservationStatus.CONFIRMED
    _bump(reservation, now, extra_fields=["status"])
    if not moves.write(
        StockEventType.RESERVATION_CONFIRMED,
        audit,
        aggregate=("reservation", reservation),
        now=now,
        extra={"reservation_id": reservation.pk, "consumed": reservation.quantity},
    ):
        _reservation_event(
            reservation, StockEventType.RESERVATION_CONFIRMED, audit, now, {"consumed": 0}
        )


def _reservation_event(reservation, event_type, audit: Audit, now: datetime, extra: dict) -> None:
    """An event for a reservation command that moved no stock (an empty reservation)."""
    event = Event(
        aggregate_type="reservation",
        aggregate_id=str(reservation.pk),
        version=reservation.version,
        event_type=event_type,
        payload={
            "reservation_id": reservation.pk,
            "sku": reservation.product.sku,
            "aggregate_version": reservation.version,
            "movements": [],
            "actor": audit.actor,
            "reason": audit.reason,
            "reason_code": audit.recorded_reason_code,
            "occurred_at": now.isoformat(),
            **extra,
        },
    )
    changes_record(events=[event], audit=audit, now=now)


def _save_allocations(allocations: list[ReservationAllocation]) -> None:
    empty = [a.pk for a in allocations if a.quantity == 0]
    kept = [a for a in allocations if a.quantity]
    if empty:
        ReservationAllocation.objects.filter(pk__in=empty).delete()
    if kept:
        ReservationAllocation.objects.bulk_update(kept, ["quantity", "backordered"])


def _bump(reservation: Reservation, now: datetime, *, extra_fields: Iterable[str] = ()) -> None:
    reservation.version += 1
    reservation.updated_at = now
    reservation.save(update_fields=["quantity", "version", "updated_at", *extra_fields])
