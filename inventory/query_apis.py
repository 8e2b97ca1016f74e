"""Read side of stock over HTTP: levels, a sku's overview with its projected totals, the
stock ledger (JSON pages or streamed CSV), low stock and a demand forecast. Readable by
every role, auditors included."""

from collections.abc import Callable

import django_filters
from django.http import StreamingHttpResponse
from drf_orjson_renderer.renderers import ORJSONRenderer
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.csv import csv_stream_response
from config.api.fields import FractionField
from config.api.filters import AwareDateTimeFilter
from config.api.pagination import OldestFirstPagination, StrictCursorPagination
from config.api.replica import ReplicaReadMixin
from history.apis import LedgerProofFields, export_access_logger
from history.filters import ReasonCodeFilter
from history.models import (
    AccessAction,
    SkuDailyAdjustments,
    SkuDemand,
    Source,
    StockLedgerEntry,
    StockMovementType,
)
from history.renderers import CSVRenderer
from history.selectors import event_deliveries, ledger_sealed
from inventory.apis import StockLevelOutput
from inventory.models import NEW_SKU_PATTERN, StockLevel
from inventory.selectors import (
    sku_demand_get,
    sku_demand_list,
    stock_forecast_get,
    stock_ledger_entries,
    stock_level_list,
    stock_level_low_list,
    stock_overview_get,
)

# --- Filters and pagination ---------------------------------------------------------------


class StockLevelPagination(StrictCursorPagination):
    ordering = "id"
    page_size = 50
    max_page_size = 500


class StockLevelFilter(django_filters.FilterSet):
    sku = django_filters.CharFilter(field_name="product__sku")
    location = django_filters.CharFilter(field_name="location__code")

    class Meta:
        model = StockLevel
        fields = []


class StockLedgerFilter(django_filters.FilterSet):
    sku = django_filters.CharFilter(field_name="product__sku")
    location = django_filters.CharFilter(field_name="location__code")
    movement = django_filters.ChoiceFilter(choices=StockMovementType.choices)
    since = AwareDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = AwareDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    reference_type = django_filters.CharFilter()
    reference_id = django_filters.CharFilter()
    actor = django_filters.CharFilter()
    source = django_filters.ChoiceFilter(choices=Source.choices)
    reason_code = ReasonCodeFilter()

    class Meta:
        model = StockLedgerEntry
        fields = []


# --- Serializers ----------------------------------------------------------------------------


class StockLevelRead(StockLevelOutput):
    """A stock level as the command endpoints answer it, plus when it last changed."""

    class Meta(StockLevelOutput.Meta):
        fields = [*StockLevelOutput.Meta.fields, "updated_at"]


class StockLowRead(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku")
    location = serializers.CharField(source="location.code")

    class Meta:
        model = StockLevel
        fields = ["sku", "location", "available", "reorder_point", "safety_stock"]


class StockLedgerRowRead(LedgerProofFields, serializers.ModelSerializer):
    location = serializers.CharField(source="location_code")
    available_after = serializers.SerializerMethodField()

    class Meta:
        model = StockLedgerEntry
        fields = [
            "event_id",
            "sku",
            "location",
            "movement",
            "version",
            "delta_on_hand",
            "delta_reserved",
            "delta_in_transit",
            "delta_backorder",
            "on_hand_after",
            "reserved_after",
            "available_after",
            "in_transit_after",
            "backorder_after",
            "reference_type",
            "reference_id",
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

    def get_available_after(self, entry: StockLedgerEntry) -> int:
        return entry.on_hand_after - entry.reserved_after


STOCK_CSV_COLUMNS = (
    "id",
    "event_id",
    "sku",
    "location_code",
    "movement",
    "version",
    "delta_on_hand",
    "delta_reserved",
    "delta_in_transit",
    "delta_backorder",
    "on_hand_after",
    "reserved_after",
    "in_transit_after",
    "backorder_after",
    "reference_type",
    "reference_id",
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


def stock_ledger_csv_response(
    queryset, filename: str, *, on_close: Callable[..., object] | None = None
) -> StreamingHttpResponse:
    return csv_stream_response(queryset, STOCK_CSV_COLUMNS, filename, on_close=on_close)


# --- Views ----------------------------------------------------------------------------------

_SKU_PATH = OpenApiParameter("sku", str, OpenApiParameter.PATH, pattern=NEW_SKU_PATTERN)


@extend_schema_view(
    get=extend_schema(
        operation_id="stock_list",
        description="Stock levels per product and location; filter by sku and location.",
    )
)
class StockListApi(ReplicaReadMixin, ListAPIView):
    serializer_class = StockLevelRead
    pagination_class = StockLevelPagination
    filterset_class = StockLevelFilter

    def get_queryset(self):
        return stock_level_list()


@extend_schema_view(
    get=extend_schema(
        operation_id="stock_low_list",
        description=(
            "Every stock level whose available quantity is at or below its reorder point."
        ),
    )
)
class StockLowListApi(ReplicaReadMixin, ListAPIView):
    serializer_class = StockLowRead
    pagination_class = StockLevelPagination
    filterset_class = StockLevelFilter

    def get_queryset(self):
        return stock_level_low_list()


@extend_schema_view(
    get=extend_schema(
        operation_id="stock_history",
        parameters=[
            OpenApiParameter(
                "format",
                str,
                enum=["json", "csv"],
                description="`csv` streams every matching entry.",
            )
        ],
        description=(
            "The stock ledger, oldest first: one row per movement at one product and "
            "location, with deltas and the resulting quantities. `?format=csv` streams it."
        ),
    )
)
class StockHistoryApi(ReplicaReadMixin, ListAPIView):
    serializer_class = StockLedgerRowRead
    pagination_class = OldestFirstPagination
    filterset_class = StockLedgerFilter
    renderer_classes = [ORJSONRenderer, CSVRenderer]

    def get_queryset(self):
        return stock_ledger_entries()

    def list(self, request, *args, **kwargs):
        if getattr(request.accepted_renderer, "format", None) == "csv":
            self.paginator.get_page_size(request)  # an export has no pages, but is checked alike
            queryset = self.filter_queryset(self.get_queryset())
            # A JSON page is a bounded read; the CSV is the export the access log records.
            sku = request.query_params.get("sku", "*")
            location = request.query_params.get("location", "*")
            logged = export_access_logger(
                self,
                action=AccessAction.EXPORT_STOCK_HISTORY,
                target=f"stock {sku}@{location}",
            )
            return stock_ledger_csv_response(queryset, "stock-history.csv", on_close=logged)
        page = self.paginate_queryset(ledger_sealed(self.filter_queryset(self.get_queryset())))
        context = {
            **self.get_serializer_context(),
            "deliveries": event_deliveries(event_ids={entry.event_id for entry in page}),
        }
        serializer = self.get_serializer(page, many=True, context=context)
        return self.get_paginated_response(serializer.data)


class StockPlaceRead(StockLevelRead):
    class Meta(StockLevelRead.Meta):
        fields = [f for f in StockLevelRead.Meta.fields if f != "sku"]


class StockTotalsRead(serializers.Serializer):
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()
    in_transit = serializers.IntegerField()
    backorder = serializers.IntegerField()
    movements = serializers.IntegerField(help_text="Ledger rows folded into the totals.")
    last_updated = serializers.DateTimeField(
        allow_null=True, help_text="When the newest folded movement happened."
    )


class StockOverviewRead(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    name = serializers.CharField(source="product.name")
    track_inventory = serializers.BooleanField(source="product.track_inventory")
    allow_backorder = serializers.BooleanField(source="product.allow_backorder")
    levels = StockPlaceRead(many=True)
    totals = StockTotalsRead()
    totals_as_of = serializers.DateTimeField(
        source="totals.last_updated",
        allow_null=True,
        help_text="The totals include every movement up to this time.",
    )
    totals_lagging = serializers.BooleanField(
        help_text="The projection has not folded every committed movement yet."
    )
    totals_pending_movements = serializers.IntegerField(
        source="pending_movements", help_text="Committed movements the totals do not include yet."
    )


class StockDetailApi(ReplicaReadMixin, APIView):
    @extend_schema(
        operation_id="stock_retrieve",
        parameters=[_SKU_PATH],
        responses={200: StockOverviewRead},
        description=(
            "A sku's stock per location, and its totals over every location from the "
            "stock_totals projection. The projection may lag the levels by a few movements: "
            "`totals_lagging` and `totals_pending_movements` say so."
        ),
    )
    def get(self, request, sku: str):
        return Response(StockOverviewRead(stock_overview_get(sku=sku)).data)


class StockDemandDayRead(serializers.Serializer):
    date = serializers.DateField()
    demand = serializers.IntegerField()


class StockForecastRead(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    days = serializers.IntegerField()
    alpha = serializers.FloatField()
    lead_time_days = serializers.IntegerField()
    average_daily_demand = serializers.FloatField(help_text="Plain mean over the window.")
    smoothed_daily_demand = serializers.FloatField(
        help_text="Simple exponential smoothing of the daily series: the expected demand per day."
    )
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField(help_text="Summed over every location.")
    reorder_point = serializers.IntegerField(help_text="Summed over every location.")
    safety_stock = serializers.IntegerField(help_text="Summed over every location.")
    days_of_cover = serializers.FloatField(
        allow_null=True, help_text="available / smoothed demand; null when demand is 0."
    )
    reorder_quantity = serializers.IntegerField(
        source="reorder.quantity",
        help_text=(
            "Brings stock at the reorder moment up to reorder_point + safety_stock + "
            "demand * lead_time_days."
        ),
    )
    reorder_date = serializers.DateField(
        source="reorder.date",
        allow_null=True,
        help_text=(
            "When available reaches the reorder point: today if it already has; null when "
            "nothing needs ordering."
        ),
    )
    series = StockDemandDayRead(many=True, help_text="Units issued or consumed per day.")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for name in ("average_daily_demand", "smoothed_daily_demand", "days_of_cover"):
            if data[name] is not None:
                data[name] = round(data[name], 4)
        return data


class StockForecastApi(ReplicaReadMixin, APIView):
    class QuerySerializer(serializers.Serializer):
        days = serializers.IntegerField(
            default=28, min_value=1, max_value=365, help_text="Window of past days, today included."
        )
        alpha = FractionField(
            default=0.3, help_text="Smoothing factor, 0 < alpha <= 1: higher reacts faster."
        )
        lead_time_days = serializers.IntegerField(
            default=7, min_value=0, max_value=365, help_text="Days from ordering to receipt."
        )

    @extend_schema(
        operation_id="stock_forecast",
        parameters=[_SKU_PATH, QuerySerializer],
        responses={200: StockForecastRead},
        description=(
            "Daily demand (units issued or consumed) over the last `days` days, smoothed "
            "exponentially, against the sku's stock over every location: days of cover and "
            "a suggested reorder quantity and date."
        ),
    )
    def get(self, request, sku: str):
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        result = stock_forecast_get(sku=sku, **query.validated_data)
        return Response(StockForecastRead(result).data)


# --- Demand per sku (the order ledger's projections) ------------------------------------------


class DemandPagination(StrictCursorPagination):
    ordering = "sku"
    page_size = 100
    max_page_size = 1000


class DemandOutput(serializers.ModelSerializer):
    class Meta:
        model = SkuDemand
        fields = ["sku", "open_quantity", "adjustment_count", "last_updated"]


@extend_schema_view(get=extend_schema(operation_id="demand_list"))
class DemandListApi(ReplicaReadMixin, ListAPIView):
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


class DemandDetailApi(ReplicaReadMixin, APIView):
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
