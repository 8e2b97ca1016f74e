import csv

from django.http import StreamingHttpResponse
from drf_orjson_renderer.renderers import ORJSONRenderer
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.generics import ListAPIView

from config.api.pagination import OldestFirstPagination, TimelinePagination
from history.filters import LedgerFilter, TimelineFilter
from history.models import OrderLedgerEntry
from history.renderers import CSVRenderer
from history.selectors import ledger_entries, order_timeline
from orders.selectors import order_get

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


class _EchoBuffer:
    def write(self, value):
        return value


def ledger_csv_response(queryset, filename: str) -> StreamingHttpResponse:
    """Stream the rows with a server-side cursor, so an export of millions of rows keeps
    memory flat."""
    writer = csv.writer(_EchoBuffer())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for row in queryset.values_list(*CSV_COLUMNS).iterator(chunk_size=2000):
            yield writer.writerow(
                [value.isoformat() if hasattr(value, "isoformat") else value for value in row]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class _LedgerListApi(ListAPIView):
    serializer_class = LedgerEntrySerializer
    renderer_classes = [ORJSONRenderer, CSVRenderer]
    csv_filename = "ledger.csv"

    def list(self, request, *args, **kwargs):
        if getattr(request.accepted_renderer, "format", None) == "csv":
            return ledger_csv_response(self.filter_queryset(self.get_queryset()), self.csv_filename)
        return super().list(request, *args, **kwargs)


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
        order_get(order_id=order_id)
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
