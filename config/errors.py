"""The one domain exception hierarchy. Services raise these; the API maps them to RFC 9457
problem details in `config.api.problems`, the admin shows their message."""

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    UNKNOWN_SKU = "unknown_sku"
    UNKNOWN_LOCATION = "unknown_location"
    INACTIVE_LOCATION = "inactive_location"
    QUANTITY_OR_DELTA = "quantity_or_delta"
    PRODUCT_IN_USE = "product_in_use"
    VERSION_CONFLICT = "version_conflict"
    ORDER_NOT_EDITABLE = "order_not_editable"
    QUANTITY_OUT_OF_RANGE = "quantity_out_of_range"
    INSUFFICIENT_STOCK = "insufficient_stock"
    COUNT_BELOW_RESERVED = "count_below_reserved"
    RESERVATION_NOT_ACTIVE = "reservation_not_active"
    RESERVATION_BELONGS_TO_ORDER = "reservation_belongs_to_order"
    TRANSFER_NOT_IN_TRANSIT = "transfer_not_in_transit"
    BATCH_REJECTED = "batch_rejected"
    UNKNOWN_REASON_CODE = "unknown_reason_code"
    REASON_CODE_REQUIRED = "reason_code_required"
    IDEMPOTENCY_IN_FLIGHT = "idempotency_key_in_flight"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    LEDGER_ARCHIVED = "ledger_archived"


class DomainError(Exception):
    code: ErrorCode = ErrorCode.INVALID
    status = 409
    title = "Conflict"

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict:
        """The error as the body of an RFC 9457 problem, without its `type`."""
        return {
            "code": str(self.code),
            "status": self.status,
            "title": self.title,
            "detail": self.detail,
            **self.extra,
        }


class DomainValidationError(DomainError):
    """Input that is well-formed but refers to things that do not exist or cannot be."""

    status = 400
    title = "Invalid input"

    def __init__(self, detail: str, *, field: str | None = None, code: ErrorCode | None = None):
        super().__init__(detail)
        self.field = field
        if code:
            self.code = code


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND
    status = 404
    title = "Not found"

    def __init__(self, what: str, key):
        super().__init__(f"{what} {key} does not exist.")


class UnknownSku(DomainValidationError):
    def __init__(self, skus, *, field: str):
        super().__init__(
            f"Unknown sku: {', '.join(sorted(skus))}.", field=field, code=ErrorCode.UNKNOWN_SKU
        )


class VersionConflict(DomainError):
    """The caller's expected version is stale: someone else changed the aggregate first."""

    code = ErrorCode.VERSION_CONFLICT
    status = 412
    title = "Precondition failed"

    def __init__(self, *, expected: int, current: int, what: str = "order"):
        super().__init__(
            f"The {what} is at version {current}, not {expected}: it was changed by someone "
            "else. Fetch it again and reapply your change.",
            current_version=current,
            expected_version=expected,
        )
        self.current = current


class OrderNotEditable(DomainError):
    code = ErrorCode.ORDER_NOT_EDITABLE
    title = "Order cannot be changed"


class QuantityOutOfRange(DomainError):
    code = ErrorCode.QUANTITY_OUT_OF_RANGE
    title = "Quantity out of range"


class InsufficientStock(DomainError):
    code = ErrorCode.INSUFFICIENT_STOCK
    title = "Insufficient stock"

    def __init__(self, *, sku: str, requested: int, available: int, location: str | None = None):
        where = f" at {location}" if location else ""
        super().__init__(
            f"Cannot take {requested} of {sku}{where}: only {available} available.",
            sku=sku,
            requested=requested,
            available=available,
            **({"location": location} if location else {}),
        )


class CountBelowReserved(DomainError):
    code = ErrorCode.COUNT_BELOW_RESERVED
    title = "Count below reserved stock"


class ReservationNotActive(DomainError):
    code = ErrorCode.RESERVATION_NOT_ACTIVE
    title = "Reservation is not active"


class TransferNotInTransit(DomainError):
    code = ErrorCode.TRANSFER_NOT_IN_TRANSIT
    title = "Transfer is not in transit"


class ProductInUse(DomainError):
    code = ErrorCode.PRODUCT_IN_USE
    title = "Product in use"


class ReservationBelongsToOrder(DomainError):
    code = ErrorCode.RESERVATION_BELONGS_TO_ORDER
    title = "Reservation belongs to an order"


class LedgerArchived(DomainError):
    """The answer needs ledger rows of a month that was archived out of the database
    (history.archive): `ledger_restore` brings it back."""

    code = ErrorCode.LEDGER_ARCHIVED
    status = 410
    title = "Archived"
