from django.db import models

from history.chain import GENESIS

MAX_LINE_QUANTITY = 100_000_000


class Customer(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class OrderStatus(models.TextChoices):
    OPEN = "open", "Open"
    CANCELLED = "cancelled", "Cancelled"
    FULFILLED = "fulfilled", "Fulfilled"


class Order(models.Model):
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    reference = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=OrderStatus, default=OrderStatus.OPEN)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # The hash of the order's last ledger row (history.chain): read under the order's lock,
    # so the next row links to it, and advanced in the same statement as the row is written.
    ledger_head = models.BinaryField(max_length=32, db_default=GENESIS, editable=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["updated_at"], name="order_updated_at_idx"),
            models.Index(fields=["status", "updated_at"], name="order_status_updated_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(version__gte=1), name="order_version_gte_1"),
        ]

    def __str__(self) -> str:
        return f"Order #{self.pk}" + (f" ({self.reference})" if self.reference else "")

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class OrderLine(models.Model):
    # Not indexed alone: the (order, product) unique constraint starts with it.
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="lines", db_index=False)
    product = models.ForeignKey(
        "inventory.Product", on_delete=models.PROTECT, related_name="order_lines"
    )
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "product"], name="orderline_one_per_product"),
            models.CheckConstraint(
                condition=models.Q(quantity__gte=0, quantity__lte=MAX_LINE_QUANTITY),
                name="orderline_quantity_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"line {self.pk} of order {self.order_id}: {self.quantity}"
