"""The order ledger over HTTP, for auditors: every entry (JSON pages or streamed CSV).
`LedgerListApi` also serves an order's own history (`orders.apis.OrderHistoryApi`)."""

from django.http import StreamingHttpResponse
from drf_orjson_renderer.renderers import ORJSONRenderer
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.generics import ListAPIView

from config.api.csv import csv_stream_response
from config.api.formats import api_datetime
from config.api.pagination import OldestFirstPagination
from history.filters import LedgerFilter
from history.models import OrderLedgerEntry
from history.renderers import CSVRenderer
from history.selectors import ledger_entries

CSV_COLUMNS = (
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
    "occurred_at",
    "correlation_id",
    "idempotency_key",
)

_FORMAT = OpenApiParameter(
    "format", str, enum=["json", "csv"], description="`csv` streams every matching entry."
)


class LedgerEntrySerializer(serializers.ModelSerializer):
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
            "occurred_at",
            "correlation_id",
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
    "occurred_at",
    "correlation_id",
)


def _ledger_row(row: dict) -> dict:
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
        "occurred_at": api_datetime(row["occurred_at"]),
        "correlation_id": row["correlation_id"],
    }


def ledger_csv_response(queryset, filename: str) -> StreamingHttpResponse:
    return csv_stream_response(queryset, CSV_COLUMNS, filename)


class LedgerListApi(ListAPIView):
    FORMAT = _FORMAT
    serializer_class = LedgerEntrySerializer
    renderer_classes = [ORJSONRenderer, CSVRenderer]
    csv_filename = "ledger.csv"

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        if getattr(request.accepted_renderer, "format", None) == "csv":
            self.paginator.get_page_size(request)  # an export has no pages, but is checked alike
            return ledger_csv_response(queryset, self.csv_filename)
        # Plain rows instead of model instances through a ModelSerializer: the same JSON
        # (LedgerEntrySerializer documents it) at a fraction of the cost per row.
        page = self.paginate_queryset(queryset.values(*_ROW_FIELDS))
        return self.get_paginated_response([_ledger_row(row) for row in page])


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
