from django.db import models
from simple_history.models import HistoricalRecords


class Customer(models.Model):
    name = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.sku


class Order(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        FULFILLED = "fulfilled"
        CANCELLED = "cancelled"

    customer = models.ForeignKey(Customer, null=True, on_delete=models.PROTECT)
    reference = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return self.reference


class OrderLine(models.Model):
    order = models.ForeignKey(Order, related_name="lines", on_delete=models.CASCADE)
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()
    history = HistoricalRecords()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "product"], name="peer_line_one_per_product")
        ]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.product_id} x {self.quantity}"


class Outbox(models.Model):
    """Events for a relay to publish (none runs in the benchmark)."""

    event_type = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=64)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"], name="peer_outbox_unpublished", condition=models.Q(published_at=None)
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_id}"
