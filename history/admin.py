import json
import uuid

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from config.roles import Role, user_has_role
from history.admin_cells import OUTBOX_TONES, BadgesMedia, badge, cut, short_time
from history.models import (
    AccessLogEntry,
    LedgerSeal,
    OrderLedgerEntry,
    OrderSnapshot,
    OutboxEvent,
    ProjectionCheckpoint,
    SkuDailyAdjustments,
    SkuDemand,
    StockLedgerEntry,
)
from history.projector import Lag, projection_lag
from history.selectors import OutboxStatus, outbox_status_q, outbox_with_status
from history.services import outbox_events_retry


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger and the outbox are written only by the services, in the same transaction
    as the change they record; nobody edits them here, superusers included."""

    actions = None
    # A COUNT(*) over the whole ledger on every page is the expensive part of a changelist.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def _as_id(term: str) -> int | None:
    """An id typed into a search box. Not `isdigit()`: '²'.isdigit() is True, but int('²')
    raises; every `isdecimal()` string is something int() reads."""
    return int(term) if term.isdecimal() else None


def _as_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term)
    except ValueError:
        return None


@admin.register(OrderLedgerEntry)
class OrderLedgerEntryAdmin(BadgesMedia, ReadOnlyAdmin):
    # Fits 1366 px: the reason is cut short (whole on hover); ids and source are on the detail page.
    list_display = (
        "event_type",
        "order_link",
        "version",
        "sku",
        "delta",
        "quantity_change",
        "actor",
        "short_reason",
        "when",
    )
    list_filter = ("event_type", "source", "occurred_at")
    search_fields = ("sku", "actor")
    search_help_text = "Search by sku or actor; an order id or event id matches exactly."
    ordering = ("-id",)
    fields = (
        "order",
        "version",
        "event_type",
        "event_id",
        "product",
        "sku",
        "quantity_before",
        "quantity_after",
        "delta",
        "actor",
        "source",
        "reason",
        "occurred_at",
        "correlation_id",
        "idempotency_key",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OrderLedgerEntry], search_term: str
    ) -> tuple[QuerySet[OrderLedgerEntry], bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if (order_id := _as_id(term)) is not None:
            results |= queryset.filter(order_id=order_id)
        elif event_id := _as_uuid(term):
            results |= queryset.filter(event_id=event_id)
        return results, may_have_duplicates

    @admin.display(description="order", ordering="order_id")
    def order_link(self, entry: OrderLedgerEntry) -> str:
        url = reverse("admin:orders_order_change", args=[entry.order_id])
        return format_html('<a href="{}">#{}</a>', url, entry.order_id)

    @admin.display(description="quantity")
    def quantity_change(self, entry: OrderLedgerEntry) -> str:
        return format_html(
            '<span class="cell-time">{} → {}</span>', entry.quantity_before, entry.quantity_after
        )

    @admin.display(description="reason")
    def short_reason(self, entry: OrderLedgerEntry) -> str:
        return cut(entry.reason, 24)

    @admin.display(description="occurred", ordering="occurred_at")
    def when(self, entry: OrderLedgerEntry) -> str:
        return short_time(entry.occurred_at)


class OutboxStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return list(OutboxStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]):
        if self.value() in OutboxStatus.values:
            return queryset.filter(outbox_status_q(self.value()))
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(BadgesMedia, ReadOnlyAdmin):
    # What an operator opens it for comes first; ids and the other times are on the detail page.
    list_display = (
        "status_badge",
        "attempts",
        "short_error",
        "published",
        "event_type",
        "aggregate",
    )
    list_display_links = ("event_type",)
    list_filter = (OutboxStatusFilter, "event_type", "created_at")
    search_fields = ("aggregate_id", "event_id")
    search_help_text = "An aggregate id or event id, matched exactly."
    ordering = ("-id",)
    actions = ("retry_dead_lettered",)
    fields = (
        "event_id",
        "event_type",
        "aggregate_type",
        "aggregate_id",
        "aggregate_version",
        "created_at",
        "status_badge",
        "published_at",
        "attempts",
        "next_attempt_at",
        "dead_lettered_at",
        "last_error",
        # The trace of the request that recorded it (README, "Tracing"); empty when off.
        "traceparent",
        "pretty_payload",
    )
    readonly_fields = ("status_badge", "pretty_payload")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxEvent]:
        return outbox_with_status(queryset=super().get_queryset(request))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OutboxEvent], search_term: str
    ) -> tuple[QuerySet[OutboxEvent], bool]:
        # Exact matches only, so the lookups stay on indexed columns.
        term = search_term.strip()
        if not term:
            return queryset, False
        query = Q(aggregate_id=term)
        if event_id := _as_uuid(term):
            query |= Q(event_id=event_id)
        return queryset.filter(query), False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """Sending events out again is an operator's call: staff and superusers, never
        auditors or integrators."""
        return user_has_role(request.user, frozenset({Role.STAFF}))

    @admin.action(description="Retry selected dead-lettered events", permissions=["retry"])
    def retry_dead_lettered(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        selected = list(queryset.order_by().values_list("pk", flat=True))
        retried = outbox_events_retry(event_ids=selected)
        self.message_user(
            request,
            f"Sent {retried} dead-lettered event(s) back to the relay.",
            messages.SUCCESS if retried else messages.WARNING,
        )
        if skipped := len(selected) - retried:
            self.message_user(
                request,
                f"{skipped} selected event(s) were not dead-lettered and were left as they are.",
                messages.INFO,
            )

    @admin.display(description="status", ordering="status")
    def status_badge(self, event: OutboxEvent) -> str:
        if not getattr(event, "status", None):
            return "—"
        status = OutboxStatus(event.status)
        return badge(status.label, tone=OUTBOX_TONES[status])

    @admin.display(description="last error")
    def short_error(self, event: OutboxEvent) -> str:
        return cut(event.last_error, 40)

    @admin.display(description="published at", ordering="published_at")
    def published(self, event: OutboxEvent) -> str:
        return short_time(event.published_at)

    @admin.display(description="aggregate", ordering="aggregate_id")
    def aggregate(self, event: OutboxEvent) -> str:
        return f"{event.aggregate_type} {event.aggregate_id} v{event.aggregate_version}"

    @admin.display(description="payload")
    def pretty_payload(self, event: OutboxEvent) -> str:
        text = json.dumps(event.payload, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)


class _ProjectionLagChangeList(ChangeList):
    """Measures the lag of every projection once per page, not once per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        lag = projection_lag()
        for checkpoint in self.result_list:
            checkpoint.lag = lag.get(checkpoint.name)


@admin.register(ProjectionCheckpoint)
class ProjectionCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("name", "events_behind", "seconds_behind", "applied_rows", "last_applied_at")
    ordering = ("name",)
    fields = ("name", "applied_rows", "last_applied_at", "updated_at", "pg_snapshot")

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return _ProjectionLagChangeList

    @staticmethod
    def _lag(checkpoint: ProjectionCheckpoint) -> Lag | None:
        return getattr(checkpoint, "lag", None)

    @admin.display(description="events behind")
    def events_behind(self, checkpoint: ProjectionCheckpoint) -> int | str:
        lag = self._lag(checkpoint)
        return "—" if lag is None else lag.events_behind

    @admin.display(description="seconds behind")
    def seconds_behind(self, checkpoint: ProjectionCheckpoint) -> float | str:
        lag = self._lag(checkpoint)
        return "—" if lag is None else lag.seconds_behind


@admin.register(OrderSnapshot)
class OrderSnapshotAdmin(ReadOnlyAdmin):
    """The read side, folded from the ledger by the projector; `rebuild_projections`
    recomputes it, nobody edits it."""

    list_display = (
        "order_link",
        "status",
        "total_quantity",
        "total_adjustments",
        "last_version",
        "updated",
    )
    list_filter = ("status",)
    search_fields = ("order_id",)
    search_help_text = "An order id, matched exactly."
    ordering = ("-order_id",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OrderSnapshot], search_term: str
    ) -> tuple[QuerySet[OrderSnapshot], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if (order_id := _as_id(term)) is None:
            return queryset.none(), False
        return queryset.filter(order_id=order_id), False

    @admin.display(description="order", ordering="order_id")
    def order_link(self, snapshot: OrderSnapshot) -> str:
        url = reverse("admin:orders_order_change", args=[snapshot.order_id])
        return format_html('<a href="{}">#{}</a>', url, snapshot.order_id)

    @admin.display(description="last updated", ordering="last_updated")
    def updated(self, snapshot: OrderSnapshot) -> str:
        return short_time(snapshot.last_updated)


@admin.register(SkuDemand)
class SkuDemandAdmin(ReadOnlyAdmin):
    list_display = ("sku", "open_quantity", "adjustment_count", "last_updated")
    search_fields = ("sku",)
    ordering = ("sku",)


@admin.register(SkuDailyAdjustments)
class SkuDailyAdjustmentsAdmin(ReadOnlyAdmin):
    list_display = ("sku", "day", "adjustment_count", "net_delta")
    search_fields = ("sku",)
    date_hierarchy = "day"
    ordering = ("-day", "sku")


@admin.register(StockLedgerEntry)
class StockLedgerEntryAdmin(BadgesMedia, ReadOnlyAdmin):
    # Fits 1366 px: the id, actor, source and reserved after are on the detail page.
    list_display = (
        "movement",
        "place",
        "version",
        "delta_on_hand",
        "delta_reserved",
        "on_hand_after",
        "reference",
        "when",
    )
    list_filter = ("movement", "source", "location", "occurred_at")
    search_fields = ("=sku", "=location_code", "actor", "=reference_id")
    search_help_text = "Search by exact sku, location code or reference id, or by actor."
    ordering = ("-id",)
    readonly_fields = [field.name for field in StockLedgerEntry._meta.fields]

    @admin.display(description="stock level", ordering="sku")
    def place(self, entry: StockLedgerEntry) -> str:
        return f"{entry.sku}@{entry.location_code}"

    @admin.display(description="reference")
    def reference(self, entry: StockLedgerEntry) -> str:
        if not entry.reference_type:
            return "—"
        return f"{entry.reference_type} {entry.reference_id}"

    @admin.display(description="occurred", ordering="occurred_at")
    def when(self, entry: StockLedgerEntry) -> str:
        return short_time(entry.occurred_at)


@admin.register(AccessLogEntry)
class AccessLogEntryAdmin(ReadOnlyAdmin):
    """Who exported or asked for a proof of what (history.services.access_log_record):
    staff and auditors read it; nobody adds, changes or deletes an entry."""

    list_display = ("occurred_at", "actor", "action", "target", "rows")
    list_filter = ("action", "occurred_at")
    search_fields = ("actor", "target")
    search_help_text = "Search by actor or target (e.g. order 12, stock SKU-1@WH-1)."
    date_hierarchy = "occurred_at"
    ordering = ("-id",)
    fields = ("occurred_at", "actor", "action", "target", "filters", "rows", "correlation_id")


@admin.register(LedgerSeal)
class LedgerSealAdmin(ReadOnlyAdmin):
    """The signed checkpoints of the ledgers (history.seals): read-only for everyone, like
    the ledgers. `manage.py verify_ledger` checks them; the API serves them to verifiers."""

    list_display = ("number", "sealed_at", "batch_size", "tree_size", "short_root", "short_key")
    date_hierarchy = "sealed_at"
    ordering = ("-number",)
    fields = (
        "number",
        "sealed_at",
        "batch_size",
        "tree_size",
        "root_hex",
        "previous_hash_hex",
        "seal_hash_hex",
        "key_id",
        "signature_hex",
    )

    @admin.display(description="root")
    def short_root(self, seal: LedgerSeal) -> str:
        return format_html('<code title="{}">{}…</code>', *_hex_and_short(seal.root))

    @admin.display(description="key")
    def short_key(self, seal: LedgerSeal) -> str:
        return format_html('<code title="{}">{}…</code>', seal.key_id, seal.key_id[:12])

    @admin.display(description="root")
    def root_hex(self, seal: LedgerSeal) -> str:
        return bytes(seal.root).hex()

    @admin.display(description="previous seal's hash")
    def previous_hash_hex(self, seal: LedgerSeal) -> str:
        return bytes(seal.previous_hash).hex()

    @admin.display(description="seal hash")
    def seal_hash_hex(self, seal: LedgerSeal) -> str:
        return bytes(seal.seal_hash).hex()

    @admin.display(description="signature (Ed25519)")
    def signature_hex(self, seal: LedgerSeal) -> str:
        return bytes(seal.signature).hex()


def _hex_and_short(value) -> tuple[str, str]:
    full = bytes(value).hex()
    return full, full[:12]
