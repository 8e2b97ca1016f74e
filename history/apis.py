"""The order ledger over HTTP, for auditors: every entry (JSON pages or streamed CSV).
`LedgerListApi` also serves an order's own history (`orders.apis.OrderHistoryApi`).
Every CSV export is recorded in the access log (`export_access_logger`)."""

import logging
from collections.abc import Callable

from django.db import DatabaseError
from django.http import StreamingHttpResponse
from drf_orjson_renderer.renderers import ORJSONRenderer
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers
from rest_framework.generics import ListAPIView

from config.api.csv import csv_stream_response
from config.api.formats import api_datetime
from config.api.pagination import OldestFirstPagination
from config.api.replica import ReplicaReadMixin
from history.filters import LedgerFilter
from history.models import AccessAction, OrderLedgerEntry
from history.renderers import CSVRenderer
from history.selectors import (
    DELIVERY_LABELS,
    Delivery,
    event_deliveries,
    ledger_entries,
    ledger_sealed,
)
from history.services import access_log_record

logger = logging.getLogger(__name__)

CSV_COLUMNS = (
    "id",
    "event_id",
    "order_id",
    "version",
    "event_type",
    "sku",
    "delta",
    "quantity_before",
    "quantity_after",
    "actor",
    "source",
    "reason",
    "reason_code",
    "occurred_at",
    "correlation_id",
    "idempotency_key",
    "prev_hash",
    "hash",
)

_FORMAT = OpenApiParameter(
    "format", str, enum=["json", "csv"], description="`csv` streams every matching entry."
)


class DeliveryOutput(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=list(DELIVERY_LABELS.items()),
        help_text="`purged`: published, and its outbox row since purged "
        "(OUTBOX_RETENTION_DAYS), so when and after how many attempts is no longer known.",
    )
    published_at = serializers.DateTimeField(allow_null=True)
    attempts = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)
    dead_lettered_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)


def delivery_document(delivery: Delivery) -> dict:
    """A row's delivery as the history JSON carries it (DeliveryOutput documents it)."""
    return {
        "status": delivery.status,
        "published_at": api_datetime(delivery.published_at) if delivery.published_at else None,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "dead_lettered_at": api_datetime(delivery.dead_lettered_at)
        if delivery.dead_lettered_at
        else None,
        "next_attempt_at": api_datetime(delivery.next_attempt_at)
        if delivery.next_attempt_at
        else None,
    }


@extend_schema_field({"type": "string", "pattern": "^[0-9a-f]{64}$"})
class HexField(serializers.Field):
    """A 32-byte hash as 64 lowercase hex digits."""

    def to_representation(self, value) -> str:
        return bytes(value).hex()


class LedgerProofFields(serializers.Serializer):
    """What an auditor checks next to each ledger row: its chain hashes, whether a seal
    covers it, and the delivery of its event. Read from `history.selectors.ledger_sealed`'s
    annotations and the `deliveries` in the context (`event_deliveries`)."""

    hash = HexField(help_text="The row's chain hash (SHA-256), hex.")
    prev_hash = HexField(help_text="The chain hash of the aggregate's previous row, hex.")
    sealed = serializers.BooleanField(help_text="Whether a seal covers the row yet.")
    seal_number = serializers.IntegerField(
        allow_null=True, help_text="The seal that covers it, if any."
    )
    delivery = serializers.SerializerMethodField()

    @extend_schema_field(DeliveryOutput)
    def get_delivery(self, entry) -> dict:
        deliveries = self.context.get("deliveries")
        if deliveries is None:
            deliveries = event_deliveries(event_ids=[entry.event_id])
        return delivery_document(deliveries[entry.event_id])


class LedgerEntrySerializer(LedgerProofFields, serializers.ModelSerializer):
    order = serializers.IntegerField(source="order_id")

    class Meta:
        model = OrderLedgerEntry
        fields = [
            "event_id",
            "order",
            "version",
            "event_type",
            "sku",
            "delta",
            "quantity_before",
            "quantity_after",
            "actor",
            "source",
            "reason",
            "reason_code",
            "occurred_at",
            "correlation_id",
            "hash",
            "prev_hash",
            "sealed",
            "seal_number",
            "delivery",
        ]


_ROW_FIELDS = (
    "id",
    "event_id",
    "order_id",
    "version",
    "event_type",
    "sku",
    "delta",
    "quantity_before",
    "quantity_after",
    "actor",
    "source",
    "reason",
    "reason_code",
    "occurred_at",
    "correlation_id",
    "hash",
    "prev_hash",
    "sealed",
    "seal_number",
)


def _ledger_row(row: dict, deliveries: dict) -> dict:
    return {
        "event_id": str(row["event_id"]),
        "order": row["order_id"],
        "version": row["version"],
        "event_type": row["event_type"],
        "sku": row["sku"],
        "delta": row["delta"],
        "quantity_before": row["quantity_before"],
        "quantity_after": row["quantity_after"],
        "actor": row["actor"],
        "source": row["source"],
        "reason": row["reason"],
        "reason_code": row["reason_code"],
        "occurred_at": api_datetime(row["occurred_at"]),
        "correlation_id": row["correlation_id"],
        "hash": bytes(row["hash"]).hex(),
        "prev_hash": bytes(row["prev_hash"]).hex(),
        "sealed": row["sealed"],
        "seal_number": row["seal_number"],
        "delivery": delivery_document(deliveries[row["event_id"]]),
    }


def ledger_csv_response(
    queryset, filename: str, *, on_close: Callable[..., object] | None = None
) -> StreamingHttpResponse:
    return csv_stream_response(queryset, CSV_COLUMNS, filename, on_close=on_close)


def export_access_logger(view, *, action: AccessAction, target: str) -> Callable[..., None]:
    """What an export's stream calls when it ends or is closed (`on_close(rows=n)`): one
    access-log entry with the caller, the target, the filters used (the view's filter
    parameters that were given: `filter_queryset` validated them, and a bad one is a 400
    before any stream exists) and the rows sent. Only file exports are recorded, not JSON
    pages: a page is a bounded read, the CSV is the copy of the ledger that leaves the
    server. An entry the database refuses is logged in full instead (the rows are gone)."""
    request = view.request
    given = view.filterset_class.base_filters
    entry = {
        "actor": request.user.get_username(),
        "action": action,
        "target": target,
        "filters": {
            name: request.query_params[name] for name in given if name in request.query_params
        },
        "correlation_id": getattr(request._request, "correlation_id", ""),
    }

    def record(*, rows: int) -> None:
        try:
            access_log_record(**entry, rows=rows)
        except DatabaseError:
            logger.exception("Access log entry not recorded: %s", {**entry, "rows": rows})

    return record


class LedgerListApi(ReplicaReadMixin, ListAPIView):
    FORMAT = _FORMAT
    serializer_class = LedgerEntrySerializer
    renderer_classes = [ORJSONRenderer, CSVRenderer]
    csv_filename = "ledger.csv"
    # What the access log calls an export of this view; get_queryset may set the target.
    export_action = AccessAction.EXPORT_ADJUSTMENTS
    export_target = "adjustments"

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        if getattr(request.accepted_renderer, "format", None) == "csv":
            self.paginator.get_page_size(request)  # an export has no pages, but is checked alike
            logged = export_access_logger(
                self, action=self.export_action, target=self.export_target
            )
            return ledger_csv_response(queryset, self.csv_filename, on_close=logged)
        # Plain rows instead of model instances through a ModelSerializer: the same JSON
        # (LedgerEntrySerializer documents it) at a fraction of the cost per row.
        page = self.paginate_queryset(ledger_sealed(queryset).values(*_ROW_FIELDS))
        deliveries = event_deliveries(event_ids={row["event_id"] for row in page})
        return self.get_paginated_response([_ledger_row(row, deliveries) for row in page])


@extend_schema_view(
    get=extend_schema(
        operation_id="adjustments_list",
        parameters=[_FORMAT],
        description="The whole order ledger, oldest first, for auditors. `?format=csv` streams it.",
    )
)
class AdjustmentListApi(LedgerListApi):
    pagination_class = OldestFirstPagination
    filterset_class = LedgerFilter
    csv_filename = "adjustments.csv"

    def get_queryset(self):
        return ledger_entries().order_by("id")
