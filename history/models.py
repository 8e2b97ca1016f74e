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
    FULFILLED = "order.fulfilled", "Fulfilled"


class StockMovementType(models.TextChoices):
    RECEIVE = "receive", "Receive"
    ISSUE = "issue", "Issue"
    ADJUST = "adjust", "Adjust"
    COUNT = "count", "Count"
    TRANSFER_OUT = "transfer_out", "Transfer out (shipped)"
    TRANSFER_INCOMING = "transfer_incoming", "Transfer incoming (in transit)"
    TRANSFER_IN = "transfer_in", "Transfer in (received)"
    TRANSFER_CANCEL = "transfer_cancel", "Transfer cancelled"
    RESERVE = "reserve", "Reserve"
    RELEASE = "release", "Release"
    CONSUME = "consume", "Consume"


class StockEventType(models.TextChoices):
    RECEIVED = "stock.received", "Received"
    ISSUED = "stock.issued", "Issued"
    ADJUSTED = "stock.adjusted", "Adjusted"
    COUNTED = "stock.counted", "Counted"
    TRANSFER_SHIPPED = "stock.transfer_shipped", "Transfer shipped"
    TRANSFER_RECEIVED = "stock.transfer_received", "Transfer received"
    TRANSFER_CANCELLED = "stock.transfer_cancelled", "Transfer cancelled"
    RESERVED = "stock.reserved", "Reserved"
    RESERVATION_RELEASED = "reservation.released", "Reservation partly released"
    RESERVATION_CONFIRMED = "reservation.confirmed", "Reservation confirmed"
    RESERVATION_CANCELLED = "reservation.cancelled", "Reservation cancelled"
    RESERVATION_EXPIRED = "reservation.expired", "Reservation expired"
    LOW = "stock.low", "Low stock"
    PRODUCT_UPDATED = "product.updated", "Product updated"


class CurrentTransactionId(models.Func):
    """The writing transaction's id. The projector uses it to find the rows committed since
    its last run, so it never skips a row that commits after one with a higher id."""

    output_field = models.BigIntegerField()

    def as_sql(self, compiler, connection, **extra_context):
        return "(pg_current_xact_id()::text::bigint)", []


class OrderLedgerEntry(models.Model):
    """One immutable row per quantity change of one order line.

    All rows written by one command share its `event_id` (the id of the outbox event) and
    the order `version` that the command produced. A trigger rejects UPDATE and DELETE;
    mistakes are corrected by a new, compensating entry. `history.recorder` is the only
    code that inserts rows.
    """

    event_id = models.UUIDField(editable=False)
    # No single-column indexes on the foreign keys: the composite indexes below start with
    # them, and every index is one more insert per ledger row.
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    product = models.ForeignKey(
        "inventory.Product", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    sku = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    event_type = models.CharField(max_length=40, choices=OrderEventType)
    delta = models.IntegerField()
    quantity_before = models.PositiveIntegerField()
    quantity_after = models.PositiveIntegerField()
    actor = models.CharField(max_length=150)
    source = models.CharField(max_length=16, choices=Source)
    reason_code = models.CharField(max_length=32)
    reason = models.CharField(max_length=500, blank=True)
    occurred_at = models.DateTimeField()
    correlation_id = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    txid = models.BigIntegerField(db_default=CurrentTransactionId(), editable=False)
    prev_hash = models.BinaryField(max_length=32, editable=False)
    hash = models.BinaryField(max_length=32, editable=False)

    class Meta:
        verbose_name = "order ledger entry"
        verbose_name_plural = "order ledger"
        ordering = ["id"]
        indexes = [
            models.Index(fields=["order", "version", "id"], name="ledger_order_version_idx"),
            models.Index(fields=["occurred_at"], name="ledger_occurred_at_idx"),
            models.Index(fields=["product", "occurred_at"], name="ledger_product_time_idx"),
            models.Index(fields=["event_id"], name="ledger_event_id_idx"),
            models.Index(fields=["txid", "id"], name="ledger_txid_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "version", "product", "occurred_at"],
                name="ledger_one_row_per_line_version",
            ),
            models.CheckConstraint(
                condition=models.Q(delta=models.F("quantity_after") - models.F("quantity_before")),
                name="ledger_delta_matches_quantities",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.order_id} v{self.version} {self.sku} {self.delta:+d}"


class StockLedgerEntry(models.Model):
    """One immutable row per movement of stock at one (product, location), with the
    resulting quantities, so that replaying the rows rebuilds every stock level. Append-only
    like the order ledger."""

    event_id = models.UUIDField(editable=False)
    product = models.ForeignKey("inventory.Product", on_delete=models.PROTECT, related_name="+")
    sku = models.CharField(max_length=64)
    location = models.ForeignKey("inventory.Location", on_delete=models.PROTECT, related_name="+")
    location_code = models.CharField(max_length=32)
    movement = models.CharField(max_length=24, choices=StockMovementType)
    delta_on_hand = models.BigIntegerField(default=0)
    delta_reserved = models.BigIntegerField(default=0)
    delta_in_transit = models.BigIntegerField(default=0)
    delta_backorder = models.BigIntegerField(default=0)
    on_hand_after = models.BigIntegerField()
    reserved_after = models.BigIntegerField()
    in_transit_after = models.BigIntegerField()
    backorder_after = models.BigIntegerField()
    version = models.PositiveIntegerField(help_text="The stock level's version after the move.")
    reference_type = models.CharField(max_length=16, blank=True)
    reference_id = models.CharField(max_length=64, blank=True)
    actor = models.CharField(max_length=150)
    source = models.CharField(max_length=16, choices=Source)
    reason_code = models.CharField(max_length=32)
    reason = models.CharField(max_length=500, blank=True)
    occurred_at = models.DateTimeField()
    correlation_id = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    txid = models.BigIntegerField(db_default=CurrentTransactionId(), editable=False)
    prev_hash = models.BinaryField(max_length=32, editable=False)
    hash = models.BinaryField(max_length=32, editable=False)

    class Meta:
        verbose_name = "stock ledger entry"
        verbose_name_plural = "stock ledger"
        ordering = ["id"]
        indexes = [
            models.Index(fields=["product", "location", "id"], name="stockledger_place_idx"),
            models.Index(fields=["product", "occurred_at"], name="stockledger_product_time_idx"),
            models.Index(fields=["occurred_at"], name="stockledger_occurred_at_idx"),
            models.Index(fields=["txid", "id"], name="stockledger_txid_idx"),
            models.Index(fields=["reference_type", "reference_id"], name="stockledger_ref_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "location", "version", "occurred_at"],
                name="stockledger_one_row_per_version",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    on_hand_after__gte=0,
                    reserved_after__gte=0,
                    in_transit_after__gte=0,
                    backorder_after__gte=0,
                    reserved_after__lte=models.F("on_hand_after"),
                ),
                name="stockledger_quantities_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku}@{self.location_code} v{self.version} {self.movement}"


class OutboxEvent(models.Model):
    """An event waiting to be relayed to the broker, written by `history.recorder` in the
    same transaction as the change it describes. `id` order is the dispatch order."""

    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    aggregate_type = models.CharField(max_length=40)
    aggregate_id = models.CharField(max_length=64)
    aggregate_version = models.PositiveIntegerField()
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    created_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    dead_lettered_at = models.DateTimeField(null=True, blank=True)
    # The W3C trace context of the span that recorded the event (config.tracing), empty
    # when tracing is off: the relay sends it on as the CloudEvents `traceparent` and
    # `tracestate` attributes and AMQP headers, and links its publish span to it.
    traceparent = models.CharField(max_length=55, blank=True, default="", db_default="")
    tracestate = models.TextField(blank=True, default="", db_default="")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"],
                name="outbox_unpublished_idx",
                condition=models.Q(published_at__isnull=True),
            ),
            models.Index(
                fields=["aggregate_type", "aggregate_id", "id"],
                name="outbox_aggregate_pending_idx",
                condition=models.Q(published_at__isnull=True),
            ),
            models.Index(
                fields=["aggregate_type", "aggregate_id", "aggregate_version"],
                name="outbox_aggregate_idx",
            ),
            # The relay's stuck aggregates (an event dead-lettered or waiting to retry):
            # usually none, so reading them costs nothing however many events are pending.
            # No published_at in the condition (outbox_published_is_settled makes it
            # needless), so no other index can answer that read.
            models.Index(
                fields=["aggregate_type", "aggregate_id", "id"],
                name="outbox_aggregate_stuck_idx",
                condition=models.Q(dead_lettered_at__isnull=False)
                | models.Q(next_attempt_at__isnull=False),
            ),
        ]
        constraints = [
            # With the partition key: see history migration 0017 for why ids stay unique.
            models.UniqueConstraint(
                fields=["event_id", "created_at"], name="outbox_event_id_unique"
            ),
            # A published event is settled: it waits for no retry and is not dead-lettered.
            models.CheckConstraint(
                condition=models.Q(published_at__isnull=True)
                | models.Q(next_attempt_at__isnull=True, dead_lettered_at__isnull=True),
                name="outbox_published_is_settled",
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


class ProjectionCheckpoint(models.Model):
    """How far one projection has read the ledger, updated in the same transaction as the
    projection: the database snapshot of its last run (`pg_snapshot`). Exactly the rows
    whose transactions had committed by then have been applied."""

    name = models.CharField(max_length=64, primary_key=True)
    pg_snapshot = models.TextField(default="1:1:")
    applied_rows = models.BigIntegerField(default=0)
    last_applied_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.pg_snapshot}"


class OrderSnapshot(models.Model):
    """Read side of an order, folded from the ledger by the projector."""

    order = models.OneToOneField(
        "orders.Order", on_delete=models.DO_NOTHING, primary_key=True, db_constraint=False
    )
    customer_id = models.BigIntegerField(null=True)
    status = models.CharField(max_length=16, default="open")
    total_quantity = models.BigIntegerField(default=0)
    lines = models.JSONField(default=dict, help_text="sku -> quantity")
    line_versions = models.JSONField(default=dict, help_text="sku -> version of that quantity")
    total_adjustments = models.PositiveIntegerField(default=0)
    last_adjustment_delta = models.BigIntegerField(
        null=True, help_text="Net delta of the most recent quantity adjustment command."
    )
    last_adjustment_version = models.PositiveIntegerField(null=True)
    last_event_id = models.UUIDField(null=True)
    last_version = models.PositiveIntegerField(default=0)
    last_updated = models.DateTimeField(null=True)

    class Meta:
        indexes = [models.Index(fields=["last_updated"], name="ordersnap_updated_idx")]

    def __str__(self) -> str:
        return f"snapshot of order {self.order_id} v{self.last_version}"


class SkuDemand(models.Model):
    """Open ordered quantity per sku across orders (cancelled orders count 0)."""

    sku = models.CharField(max_length=64, primary_key=True)
    open_quantity = models.BigIntegerField(default=0)
    adjustment_count = models.PositiveIntegerField(default=0)
    last_updated = models.DateTimeField(null=True)

    class Meta:
        verbose_name = "SKU demand"
        verbose_name_plural = "SKU demand"

    def __str__(self) -> str:
        return f"{self.sku}: {self.open_quantity}"


class SkuStockTotals(models.Model):
    """Stock of one sku summed over every location, folded from the stock ledger."""

    sku = models.CharField(max_length=64, primary_key=True)
    on_hand = models.BigIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)
    in_transit = models.BigIntegerField(default=0)
    backorder = models.BigIntegerField(default=0)
    movements = models.PositiveBigIntegerField(default=0)
    last_updated = models.DateTimeField(null=True)

    class Meta:
        verbose_name = "SKU stock totals"
        verbose_name_plural = "SKU stock totals"

    def __str__(self) -> str:
        return f"{self.sku}: {self.on_hand} on hand"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class SkuDailyAdjustments(models.Model):
    """Per sku and day: how many ledger rows and their net delta."""

    sku = models.CharField(max_length=64)
    day = models.DateField()
    adjustment_count = models.PositiveIntegerField(default=0)
    net_delta = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "SKU daily adjustments"
        verbose_name_plural = "SKU daily adjustments"
        constraints = [models.UniqueConstraint(fields=["sku", "day"], name="sku_day_unique")]

    def __str__(self) -> str:
        return f"{self.sku} {self.day}: {self.adjustment_count}"


class LedgerKind(models.TextChoices):
    ORDER = "order", "Order ledger"
    STOCK = "stock", "Stock ledger"


class DailyChangeCounts(models.Model):
    """Per day, ledger and source: how many ledger rows (order changes, stock movements).
    The day is the row's occurred_at in settings.TIME_ZONE when it was folded: after
    changing TIME_ZONE, rebuild the projections. Folded by the projector, one projection
    per ledger (daily_changes_order, daily_changes_stock); the dashboard's chart reads it."""

    day = models.DateField()
    ledger = models.CharField(max_length=8, choices=LedgerKind)
    source = models.CharField(max_length=16, choices=Source)
    rows = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "daily change counts"
        verbose_name_plural = "daily change counts"
        constraints = [
            models.UniqueConstraint(fields=["day", "ledger", "source"], name="daily_changes_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.ledger} {self.source}: {self.rows}"


class ConsumedEvent(models.Model):
    """Consumers record each event id they handled, in the same transaction as its effect,
    which makes at-least-once delivery effectively-once. Records older than
    CONSUMED_EVENT_RETENTION_DAYS are purged hourly (by consumed_at, hence the index)."""

    consumer = models.CharField(max_length=64)
    event_id = models.UUIDField()
    consumed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["consumer", "event_id"], name="consumed_once")
        ]
        indexes = [models.Index(fields=["consumed_at"], name="consumed_event_at_idx")]

    def __str__(self) -> str:
        return f"{self.consumer}:{self.event_id}"


class Instance(models.Model):
    """This database's identity: a random id created with the database (by a migration).
    It is part of every cache key, so two databases behind one Redis (a second environment,
    a re-created database) never read each other's entries. After restoring a backup over
    a running system, give it a new one: `manage.py rotate_instance_id`."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    instance_id = models.UUIDField(default=uuid.uuid4)
    rotated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="instance_one_row")]

    def __str__(self) -> str:
        return str(self.instance_id)


class LedgerSeal(models.Model):
    """A signed checkpoint of both ledgers (history.seals): the tree head (RFC 9162) over
    every ledger row sealed so far, as one log whose leaves are the rows' hashes. Seal n
    adds the rows committed since seal n-1 (by transaction snapshot: order ledger rows by
    id, then stock ledger rows by id), links to seal n-1 by its hash, and is signed with
    Ed25519. Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE."""

    number = models.PositiveBigIntegerField(primary_key=True)
    tree_size = models.PositiveBigIntegerField(help_text="Rows sealed by this seal and before.")
    batch_size = models.PositiveBigIntegerField(help_text="Rows this seal added.")
    root = models.BinaryField(max_length=32)
    # The roots of the perfect subtrees that make up the tree, left to right (32 bytes
    # each): enough to extend the tree without reading the rows of earlier seals.
    frontier = models.BinaryField()
    previous_hash = models.BinaryField(max_length=32)
    seal_hash = models.BinaryField(max_length=32, unique=True)
    sealed_at = models.DateTimeField()
    snapshot = models.TextField(help_text="The pg_snapshot whose committed rows it covers.")
    snapshot_xmax = models.BigIntegerField()
    key_id = models.CharField(max_length=64, help_text="SHA-256 of the signing public key.")
    signature = models.BinaryField(max_length=64)

    class Meta:
        ordering = ["number"]
        indexes = [models.Index(fields=["snapshot_xmax"], name="seal_snapshot_xmax_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(tree_size__gte=models.F("batch_size")),
                name="seal_tree_holds_batch",
            ),
        ]

    def __str__(self) -> str:
        return f"seal {self.number} ({self.tree_size} rows)"


class AccessAction(models.TextChoices):
    EXPORT_ADJUSTMENTS = "export_adjustments", "Export of the adjustments feed"
    EXPORT_ORDER_HISTORY = "export_order_history", "Export of an order's history"
    EXPORT_STOCK_HISTORY = "export_stock_history", "Export of a stock history"
    PROOF_ORDER = "proof_order", "Proof of an order's chain"
    PROOF_STOCK = "proof_stock", "Proof of a stock level's chain"


class AccessLogEntry(models.Model):
    """Who exported or asked for a proof of what, when, with which filter, and how many rows
    left the server. Append-only like the ledgers."""

    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=AccessAction)
    target = models.CharField(max_length=200, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    rows = models.PositiveBigIntegerField(null=True, blank=True)
    occurred_at = models.DateTimeField(db_index=True)
    correlation_id = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = "access log entry"
        verbose_name_plural = "access log"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.target}"


class LedgerArchive(models.Model):
    """One month of one ledger written to a compressed file and read back (history.archive):
    the registry the owner's `history_ledger_archive_drop` consults before it detaches and
    drops that month's partition, and `verify_ledger` before it trusts the file. A row is
    inserted only once its file was verified; `dropped_at` and `restored_at` are set by the
    owner's functions (history migration 0018), and a trigger lets nothing else change."""

    ledger = models.CharField(max_length=8, choices=LedgerKind)
    month = models.DateField(help_text="The month's first day (UTC).")
    file_name = models.CharField(max_length=200, help_text="In LEDGER_ARCHIVE_DIR.")
    manifest_name = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64, help_text="Of the file, hex.")
    manifest_sha256 = models.CharField(max_length=64)
    row_count = models.PositiveBigIntegerField()
    # SHA-256 of the rows' chain hashes concatenated in id order: what the drop function
    # recomputes from the partition, so it drops only the rows that were archived.
    rows_digest = models.BinaryField(max_length=32)
    first_id = models.BigIntegerField(null=True)
    last_id = models.BigIntegerField(null=True)
    first_occurred_at = models.DateTimeField(null=True)
    last_occurred_at = models.DateTimeField(null=True)
    archived_at = models.DateTimeField()
    dropped_at = models.DateTimeField(null=True, blank=True)
    restored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "ledger archive"
        ordering = ["month", "ledger", "id"]
        constraints = [
            # One archive per month out of the database. A month may have other archives:
            # restored ones, and ones superseded before their drop (the partition changed
            # after they were registered, so a later run archived it again).
            models.UniqueConstraint(
                fields=["ledger", "month"],
                condition=models.Q(dropped_at__isnull=False, restored_at__isnull=True),
                name="ledger_archive_one_per_month",
            ),
            models.CheckConstraint(
                condition=models.Q(restored_at__isnull=True) | models.Q(dropped_at__isnull=False),
                name="ledger_archive_restored_after_drop",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ledger} ledger {self.month:%Y-%m} ({self.row_count} rows)"


class LedgerArchiveHead(models.Model):
    """Where one order's (stock level's) hash chain stands at the end of its rows in an
    archived month, and its running state, so that replay and chain checks go on from here
    without reading the archive. Usually one per aggregate and month; more when the
    aggregate's rows of that month are not consecutive in its chain (a command that took
    its time before a month's end, committed after one of the next month)."""

    archive = models.ForeignKey(LedgerArchive, on_delete=models.PROTECT, related_name="heads")
    aggregate_id = models.BigIntegerField(help_text="The order id, or the product id.")
    location_id = models.BigIntegerField(null=True, help_text="Stock levels only.")
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    rows = models.PositiveIntegerField()
    prev_hash = models.BinaryField(max_length=32, help_text="What the first row links to.")
    hash = models.BinaryField(max_length=32, help_text="The last row's hash.")
    first_version = models.PositiveIntegerField()
    version = models.PositiveIntegerField()
    before = models.JSONField(help_text="The state the first rows continue from.")
    after = models.JSONField(help_text="The state after the last row.")

    class Meta:
        indexes = [
            models.Index(
                fields=["aggregate_id", "location_id", "first_id"],
                name="archive_head_aggregate_idx",
            ),
            models.Index(fields=["archive", "first_id"], name="archive_head_archive_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.aggregate_id} v{self.version} in {self.archive_id}"
