from django.http import StreamingHttpResponse
from drf_orjson_renderer.renderers import ORJSONRenderer
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.csv import csv_stream_response
from config.api.formats import api_datetime
from config.api.pagination import OldestFirstPagination, TimelinePagination
from history.filters import LedgerFilter, TimelineFilter
from history.models import OrderLedgerEntry, SkuDailyAdjustments, SkuDemand
from history.renderers import CSVRenderer
from history.selectors import ledger_entries, order_timeline, sku_demand_get, sku_demand_list
from orders.selectors import order_exists

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


class _LedgerListApi(ListAPIView):
    serializer_class = LedgerEntrySerializer
    renderer_classes = [ORJSONRenderer, CSVRenderer]
    csv_filename = "ledger.csv"

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        if getattr(request.accepted_renderer, "format", None) == "csv":
            return ledger_csv_response(queryset, self.csv_filename)
        # Plain rows instead of model instances through a ModelSerializer: the same JSON
        # (LedgerEntrySerializer documents it) at a fraction of the cost per row.
        page = self.paginate_queryset(queryset.values(*_ROW_FIELDS))
        return self.get_paginated_response([_ledger_row(row) for row in page])


@extend_schema_view(
    get=extend_schema(
        operation_id="order_history",
        parameters=[_FORMAT],
        description="The order's timeline, oldest first. Filter by since/until/sku/actor.",
    )
)
class OrderHistoryApi(_LedgerListApi):
    pagination_class = TimelinePagination
    filterset_class = TimelineFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return OrderLedgerEntry.objects.none()
        order_id = self.kwargs["order_id"]
        order_exists(order_id=order_id)
        self.csv_filename = f"order-{order_id}-history.csv"
        return order_timeline(order_id=order_id)


@extend_schema_view(
    get=extend_schema(
        operation_id="adjustments_list",
        parameters=[_FORMAT],
        description="The whole order ledger, oldest first, for auditors. `?format=csv` streams it.",
    )
)
class AdjustmentListApi(_LedgerListApi):
    pagination_class = OldestFirstPagination
    filterset_class = LedgerFilter
    csv_filename = "adjustments.csv"

    def get_queryset(self):
        return ledger_entries().order_by("id")


class DemandPagination(CursorPagination):
    ordering = "sku"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class DemandOutput(serializers.ModelSerializer):
    class Meta:
        model = SkuDemand
        fields = ["sku", "open_quantity", "adjustment_count", "last_updated"]


@extend_schema_view(get=extend_schema(operation_id="demand_list"))
class DemandListApi(ListAPIView):
    """Open demand per sku, from the projector's snapshot (it lags the ledger by the
    projection lag that /readyz reports)."""

    serializer_class = DemandOutput
    pagination_class = DemandPagination
    filterset_fields = ["sku"]

    def get_queryset(self):
        return sku_demand_list()


class DemandDayOutput(serializers.ModelSerializer):
    class Meta:
        model = SkuDailyAdjustments
        fields = ["day", "adjustment_count", "net_delta"]


class DemandDetailApi(APIView):
    class OutputSerializer(serializers.Serializer):
        sku = serializers.CharField()
        open_quantity = serializers.IntegerField()
        adjustment_count = serializers.IntegerField()
        last_updated = serializers.DateTimeField(allow_null=True)
        daily = DemandDayOutput(
            many=True, help_text="The last 30 days (UTC) that had changes, oldest first."
        )

        class Meta:
            ref_name = "DemandDetail"

    @extend_schema(
        operation_id="demand_retrieve",
        responses={200: OutputSerializer},
        description="A sku's open demand and its daily adjustments over the last 30 days.",
    )
    def get(self, request, sku: str):
        return Response(self.OutputSerializer(sku_demand_get(sku=sku, days=30)).data)
