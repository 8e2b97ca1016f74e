import uuid

from django.conf import settings
from django.db import models


class Source(models.TextChoices):
    ADMIN = "admin", "Admin"
    API = "api", "API"
    SYSTEM = "system", "System"


class OrderEventType(models.TextChoices):
    CREATED = "order.created", "Created"
    QUANTITY_ADJUSTED = "order.quantity_adjusted", "Quantity adjusted"
    CANCELLED = "order.cancelled", "Cancelled"


class OrderLedgerEntry(models.Model):
    """One immutable row per quantity change of one order line.

    All rows written by one command share its `event_id` (the id of the outbox event) and
    the order `version` that the command produced. A PostgreSQL/SQLite trigger rejects
    UPDATE and DELETE; mistakes are corrected by a new, compensating entry.
    """

    event_id = models.UUIDField(editable=False)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="+")
    product = models.ForeignKey("inventory.Product", on_delete=models.PROTECT, related_name="+")
    sku = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    event_type = models.CharField(max_length=40, choices=OrderEventType)
    delta = models.IntegerField()
    quantity_before = models.PositiveIntegerField()
    quantity_after = models.PositiveIntegerField()
    actor = models.CharField(max_length=150)
    source = models.CharField(max_length=16, choices=Source)
    reason = models.CharField(max_length=500, blank=True)
    occurred_at = models.DateTimeField()
    correlation_id = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name = "order ledger entry"
        verbose_name_plural = "order ledger"
        ordering = ["id"]
        indexes = [
            models.Index(fields=["order", "version", "id"], name="ledger_order_version_idx"),
            models.Index(fields=["occurred_at"], name="ledger_occurred_at_idx"),
            models.Index(fields=["product", "occurred_at"], name="ledger_product_time_idx"),
            models.Index(fields=["event_id"], name="ledger_event_id_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "version", "product"], name="ledger_one_row_per_line_version"
            ),
            models.CheckConstraint(
                condition=models.Q(delta=models.F("quantity_after") - models.F("quantity_before")),
                name="ledger_delta_matches_quantities",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.order_id} v{self.version} {self.sku} {self.delta:+d}"


class OutboxEvent(models.Model):
    """An event waiting to be relayed to the broker, written in the same transaction as the
    change it describes. `id` order is the dispatch order."""

    event_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    aggregate_type = models.CharField(max_length=40)
    aggregate_id = models.CharField(max_length=64)
    aggregate_version = models.PositiveIntegerField()
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    created_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"],
                name="outbox_unpublished_idx",
                condition=models.Q(published_at__isnull=True),
            ),
            models.Index(
                fields=["aggregate_type", "aggregate_id", "aggregate_version"],
                name="outbox_aggregate_idx",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.event_type} {self.aggregate_type}:{self.aggregate_id} v{self.aggregate_version}"
        )


class IdempotencyRecord(models.Model):
    """The stored response for an `Idempotency-Key`, per principal. It is written in the same
    transaction as the write it guards, so a key is either unused or tied to a committed
    outcome."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.BinaryField()
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} -> {self.status_code}"
