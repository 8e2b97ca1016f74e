from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q

from history.chain import GENESIS

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
sku_validator = RegexValidator(
    SKU_PATTERN, "A sku is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."
)
# Words of the stock routes (/api/v1/stock/<word>/) that a new product's sku may not be, so
# that /api/v1/stock/<sku>/ always reaches the product.
RESERVED_STOCK_PATHS = (
    "history",
    "low",
    "receive",
    "issue",
    "adjust",
    "count",
    "thresholds",
    "transfer",
    "transfers",
    "reserve",
    "reservations",
)
NEW_SKU_PATTERN = rf"^(?!(?:{'|'.join(RESERVED_STOCK_PATHS)})$)" + SKU_PATTERN[1:]
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
code_validator = RegexValidator(
    CODE_PATTERN,
    "A code is 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)
MAX_STOCK_QUANTITY = 1_000_000_000


class Product(models.Model):
    """A sku. Its flags decide how orders move stock, so they change only through
    `inventory.services.product_update`, which records each change as a `product.updated`
    event and refuses one while open orders or reservations depend on it."""

    sku = models.CharField(max_length=64, unique=True, validators=[sku_validator])
    name = models.CharField(max_length=200)
    track_inventory = models.BooleanField(default=True)
    allow_backorder = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.sku} · {self.name}"


class LocationType(models.TextChoices):
    WAREHOUSE = "warehouse", "Warehouse"
    STORE = "store", "Store"
    TRANSIT = "transit", "Transit"


class Location(models.Model):
    code = models.CharField(max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=16, choices=LocationType, default=LocationType.WAREHOUSE)
    address = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    priority = models.PositiveIntegerField(
        default=100, help_text="Allocation order: lower numbers are reserved from first."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["priority", "code"]

    def __str__(self) -> str:
        return self.code


class StockLevel(models.Model):
    """Stock of one product at one location. `available` = on_hand - reserved.

    `backorder` counts units promised but not on hand (products that allow backorders): the
    backordered part of reservations, settled when they are confirmed, and the shortfall of
    issues, filled from the next receipt. It is kept apart so `reserved <= on_hand` holds."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="stock_levels")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="stock_levels")
    on_hand = models.BigIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)
    available = models.GeneratedField(
        expression=F("on_hand") - F("reserved"),
        output_field=models.BigIntegerField(),
        db_persist=True,
    )
    in_transit = models.BigIntegerField(default=0)
    backorder = models.BigIntegerField(default=0)
    reorder_point = models.BigIntegerField(default=0)
    safety_stock = models.BigIntegerField(default=0)
    is_low = models.BooleanField(
        default=False, help_text="available <= reorder_point; stock.low is raised on crossing."
    )
    version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    # The hash of the level's last stock ledger row (history.chain), like Order.ledger_head.
    ledger_head = models.BinaryField(max_length=32, db_default=GENESIS, editable=False)

    class Meta:
        ordering = ["product_id", "location_id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "location"], name="stock_one_per_place"),
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="stock_on_hand_gte_0"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stock_reserved_gte_0"),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="stock_reserved_lte_on_hand"
            ),
            models.CheckConstraint(condition=Q(in_transit__gte=0), name="stock_in_transit_gte_0"),
            models.CheckConstraint(condition=Q(backorder__gte=0), name="stock_backorder_gte_0"),
            models.CheckConstraint(
                condition=Q(reorder_point__gte=0, safety_stock__gte=0),
                name="stock_thresholds_gte_0",
            ),
        ]
        indexes = [
            models.Index(fields=["location", "product"], name="stock_location_idx"),
            models.Index(fields=["is_low"], name="stock_low_idx", condition=Q(is_low=True)),
        ]

    def __str__(self) -> str:
        return f"{self.product.sku}@{self.location.code}"


class ReservationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CONFIRMED = "confirmed", "Confirmed"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class Reservation(models.Model):
    """Units of one product held for someone (an order line, or an API caller's
    `reference`), allocated over one or more locations."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="reservations")
    quantity = models.BigIntegerField()
    status = models.CharField(
        max_length=16, choices=ReservationStatus, default=ReservationStatus.ACTIVE
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    reference = models.CharField(max_length=100, blank=True)
    order = models.ForeignKey(
        "orders.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="reservations"
    )
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=0), name="reservation_quantity_gte_0"),
            models.UniqueConstraint(
                fields=["order", "product"],
                condition=Q(order__isnull=False, status="active"),
                name="reservation_one_active_per_order_line",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                name="reservation_expiry_idx",
                condition=Q(status="active", expires_at__isnull=False),
            ),
            models.Index(fields=["status", "-id"], name="reservation_status_idx"),
        ]

    def __str__(self) -> str:
        return f"reservation {self.pk}: {self.quantity} of {self.product.sku} ({self.status})"


class ReservationAllocation(models.Model):
    """The part of a reservation held at one location; `backordered` of it was not on hand."""

    reservation = models.ForeignKey(
        Reservation, on_delete=models.CASCADE, related_name="allocations"
    )
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    quantity = models.BigIntegerField()
    backordered = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reservation", "location"], name="allocation_one_per_location"
            ),
            models.CheckConstraint(
                condition=Q(backordered__gte=0, quantity__gte=F("backordered")),
                name="allocation_backordered_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} at {self.location_id}"

    def shortfall(self, *, available: int) -> int:
        """The backordered units that `available` (the level's on hand less reserved) does
        not cover: confirming the reservation (fulfilling its order) needs none."""
        return max(self.backordered - available, 0)


class TransferStatus(models.TextChoices):
    IN_TRANSIT = "in_transit", "In transit"
    RECEIVED = "received", "Received"
    CANCELLED = "cancelled", "Cancelled"


class Transfer(models.Model):
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    from_location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    to_location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    quantity = models.BigIntegerField()
    status = models.CharField(
        max_length=16, choices=TransferStatus, default=TransferStatus.IN_TRANSIT
    )
    reason = models.CharField(max_length=500, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="transfer_quantity_gt_0"),
            models.CheckConstraint(
                condition=~Q(from_location=F("to_location")), name="transfer_between_places"
            ),
        ]

    def __str__(self) -> str:
        return f"transfer {self.pk}: {self.quantity} {self.from_location_id}->{self.to_location_id}"
