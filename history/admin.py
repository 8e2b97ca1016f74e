import json
import uuid

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from history.models import OrderLedgerEntry, OutboxEvent


class _ReadOnlyAdmin(admin.ModelAdmin):
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


def _as_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term)
    except ValueError:
        return None


@admin.register(OrderLedgerEntry)
class OrderLedgerEntryAdmin(_ReadOnlyAdmin):
    list_display = (
        "id",
        "order_link",
        "version",
        "event_type",
        "sku",
        "delta",
        "quantity_before",
        "quantity_after",
        "actor",
        "source",
        "reason",
        "occurred_at",
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
        if term.isdigit():
            results |= queryset.filter(order_id=int(term))
        elif event_id := _as_uuid(term):
            results |= queryset.filter(event_id=event_id)
        return results, may_have_duplicates

    @admin.display(description="order", ordering="order_id")
    def order_link(self, entry: OrderLedgerEntry) -> str:
        url = reverse("admin:orders_order_change", args=[entry.order_id])
        return format_html('<a href="{}">#{}</a>', url, entry.order_id)


class PublishedFilter(admin.SimpleListFilter):
    title = "published"
    parameter_name = "published"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [("yes", "Published"), ("no", "Unpublished")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]):
        if self.value() == "yes":
            return queryset.filter(published_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(published_at__isnull=True)
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(_ReadOnlyAdmin):
    list_display = (
        "id",
        "event_type",
        "aggregate_type",
        "aggregate_id",
        "aggregate_version",
        "created_at",
        "published",
        "published_at",
        "attempts",
    )
    list_filter = ("event_type", PublishedFilter, "created_at")
    search_fields = ("aggregate_id", "event_id")
    search_help_text = "An aggregate id or event id, matched exactly."
    ordering = ("-id",)
    fields = (
        "event_id",
        "event_type",
        "aggregate_type",
        "aggregate_id",
        "aggregate_version",
        "created_at",
        "published_at",
        "attempts",
        "last_error",
        "pretty_payload",
    )
    readonly_fields = ("pretty_payload",)

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

    @admin.display(boolean=True, description="published", ordering="published_at")
    def published(self, event: OutboxEvent) -> bool:
        return event.published_at is not None

    @admin.display(description="payload")
    def pretty_payload(self, event: OutboxEvent) -> str:
        text = json.dumps(event.payload, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)
