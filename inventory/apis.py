"""Thin HTTP callers of inventory.services: parse, call one service, render. Every write
accepts Idempotency-Key; unknown skus and locations are field errors (400), a take beyond
what is available is 409 `insufficient_stock` with `available` in the body."""

from collections.abc import Callable
from datetime import timedelta

import django_filters
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.common import IDEMPOTENCY_KEY, validated
from config.api.conditional import etag
from config.api.fields import NonZeroIntegerField, StrictIntegerField
from config.api.filters import IdFilter, TrueFalseFilter
from config.api.serializers import AwareDateTimeField, StrictSerializer
from config.logging import bind as log_bind
from history.audit import api_audit
from history.idempotency import IdempotentMixin
from history.serializers import ReasonCodeField
from inventory import services
from inventory.models import (
    CODE_PATTERN,
    MAX_STOCK_QUANTITY,
    NEW_SKU_PATTERN,
    RESERVED_STOCK_PATHS,
    Location,
    LocationType,
    Product,
    Reservation,
    ReservationAllocation,
    ReservationStatus,
    StockLevel,
    Transfer,
    TransferStatus,
)
from inventory.selectors import (
    location_get,
    location_list,
    product_get,
    product_list,
    reservation_get,
    reservation_list,
    transfer_get,
    transfer_list,
)


def _sku_field():
    return serializers.CharField(max_length=64)


def _location_field(**kwargs):
    return serializers.CharField(max_length=32, **kwargs)


def _quantity_field():
    return StrictIntegerField(min_value=1, max_value=MAX_STOCK_QUANTITY)


def _reason_field(*, required: bool = True):
    if required:
        return serializers.CharField(max_length=500)
    return serializers.CharField(max_length=500, allow_blank=True, required=False)


class _OptionalReasonInput(StrictSerializer):
    reason = _reason_field(required=False)
    reason_code = ReasonCodeField()
    reason_code = ReasonCodeField()


class _TransitionApi(IdempotentMixin, APIView):
    # A POST with an optional reason: `service` moves on the object the URL names, and the
    # answer is `respond(id)`. Subclasses only set the attributes. (Not a docstring:
    # drf-spectacular would publish it as a description.)

    service: Callable[..., object]
    respond: Callable[[int], Response]
    output: type[serializers.Serializer]
    id_kwarg: str
    operation_id: str
    operation_description: str

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # An input class of its own, so the schema names the request body after the view.
        cls.InputSerializer = type(
            "InputSerializer",
            (_OptionalReasonInput,),
            {"__module__": cls.__module__, "__qualname__": f"{cls.__qualname__}.InputSerializer"},
        )
        schema = extend_schema(
            operation_id=cls.operation_id,
            request=cls.InputSerializer,
            responses={200: cls.output},
            parameters=[IDEMPOTENCY_KEY],
            description=cls.operation_description,
        )
        extend_schema_view(post=schema)(cls)

    def post(self, request, **kwargs):
        data = validated(self.InputSerializer, request)
        object_id = kwargs[self.id_kwarg]
        audit = api_audit(
            request, reason=data.get("reason", ""), reason_code=data.get("reason_code", "")
        )
        self.service(**{self.id_kwarg: object_id}, audit=audit)
        return self.respond(object_id)


# --- Products -------------------------------------------------------------------------------


class ProductOutput(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "sku", "name", "track_inventory", "allow_backorder", "created_at"]


class ProductListCreateApi(IdempotentMixin, ListAPIView):
    serializer_class = ProductOutput
    filterset_fields = ["sku"]

    class InputSerializer(StrictSerializer):
        sku = serializers.RegexField(
            NEW_SKU_PATTERN,
            max_length=64,
            error_messages={
                "invalid": "A sku is 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit, and not a word of the stock routes "
                f"({', '.join(RESERVED_STOCK_PATHS)})."
            },
        )
        name = serializers.CharField(max_length=200)
        track_inventory = serializers.BooleanField(default=True)
        allow_backorder = serializers.BooleanField(default=False)

    def get_queryset(self):
        return product_list()

    @extend_schema(
        operation_id="products_create",
        request=InputSerializer,
        responses={201: ProductOutput},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request):
        data = validated(self.InputSerializer, request)
        product = services.product_create(**data)
        return Response(ProductOutput(product).data, status=status.HTTP_201_CREATED)


class ProductDetailApi(APIView):
    @extend_schema(operation_id="products_retrieve", responses={200: ProductOutput})
    def get(self, request, sku: str):
        return Response(ProductOutput(product_get(sku=sku)).data)


# --- Locations ------------------------------------------------------------------------------


class LocationOutput(serializers.ModelSerializer):
    class Meta:
        model = Location
        fields = ["id", "code", "name", "type", "address", "active", "priority", "created_at"]


class LocationFilter(django_filters.FilterSet):
    active = TrueFalseFilter()
    type = django_filters.ChoiceFilter(choices=LocationType.choices)

    class Meta:
        model = Location
        fields = []


class LocationListCreateApi(IdempotentMixin, ListAPIView):
    serializer_class = LocationOutput
    filterset_class = LocationFilter

    class InputSerializer(StrictSerializer):
        code = serializers.RegexField(CODE_PATTERN, max_length=32)
        name = serializers.CharField(max_length=200)
        type = serializers.ChoiceField(choices=LocationType.choices, default=LocationType.WAREHOUSE)
        address = serializers.CharField(max_length=1000, allow_blank=True, required=False)
        active = serializers.BooleanField(default=True)
        priority = StrictIntegerField(
            min_value=0,
            max_value=1_000_000,
            required=False,
            help_text="Allocation order: lower numbers are reserved from first (default 100).",
        )

    def get_queryset(self):
        return location_list()

    @extend_schema(operation_id="locations_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="locations_create",
        request=InputSerializer,
        responses={201: LocationOutput},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request):
        data = validated(self.InputSerializer, request)
        location = services.location_create(**data)
        return Response(
            LocationOutput(location).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/locations/{location.code}/"},
        )


class LocationDetailApi(APIView):
    @extend_schema(operation_id="locations_retrieve", responses={200: LocationOutput})
    def get(self, request, code: str):
        return Response(LocationOutput(location_get(code=code)).data)


# --- Stock at one place ---------------------------------------------------------------------


class StockLevelOutput(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku")
    location = serializers.CharField(source="location.code")
    available = serializers.IntegerField()

    class Meta:
        model = StockLevel
        fields = [
            "sku",
            "location",
            "on_hand",
            "reserved",
            "available",
            "in_transit",
            "backorder",
            "reorder_point",
            "safety_stock",
            "version",
            "is_low",
        ]


def stock_level_response(level: StockLevel) -> Response:
    data = StockLevelOutput(level).data
    log_bind(stock_level=f"{data['sku']}@{data['location']}")  # on the request's log line
    return Response(data, headers={"ETag": etag(level.version)})


class StockReceiveApi(IdempotentMixin, APIView):
    class InputSerializer(StrictSerializer):
        sku = _sku_field()
        location = _location_field()
        quantity = _quantity_field()
        reason = _reason_field()
        reason_code = ReasonCodeField()

    @extend_schema(
        operation_id="stock_receive",
        request=InputSerializer,
        responses={200: StockLevelOutput},
        parameters=[IDEMPOTENCY_KEY],
        description="Goods arrived: on_hand rises by quantity.",
    )
    def post(self, request):
        data = validated(self.InputSerializer, request)
        level = services.stock_receive(
            sku=data["sku"],
            location=data["location"],
            quantity=data["quantity"],
            audit=api_audit(
                request, reason=data["reason"], reason_code=data.get("reason_code", "")
            ),
        )
        return stock_level_response(level)


class StockIssueApi(IdempotentMixin, APIView):
    class InputSerializer(StrictSerializer):
        sku = _sku_field()
        location = _location_field()
        quantity = _quantity_field()
        reason = _reason_field()
        reason_code = ReasonCodeField()

    @extend_schema(
        operation_id="stock_issue",
        request=InputSerializer,
        responses={200: StockLevelOutput},
        parameters=[IDEMPOTENCY_KEY],
        description=(
            "Goods left without a reservation: on_hand drops by quantity. Only available "
            "units can be issued (409 `insufficient_stock` otherwise), unless the product "
            "allows backorders."
        ),
    )
    def post(self, request):
        data = validated(self.InputSerializer, request)
        level = services.stock_issue(
            sku=data["sku"],
            location=data["location"],
            quantity=data["quantity"],
            audit=api_audit(
                request, reason=data["reason"], reason_code=data.get("reason_code", "")
            ),
        )
        return stock_level_response(level)


class StockAdjustApi(IdempotentMixin, APIView):
    class InputSerializer(StrictSerializer):
        sku = _sku_field()
        location = _location_field()
        delta = NonZeroIntegerField(min_value=-MAX_STOCK_QUANTITY, max_value=MAX_STOCK_QUANTITY)
        reason = _reason_field()
        reason_code = ReasonCodeField()

    @extend_schema(
        operation_id="stock_adjust",
        request=InputSerializer,
        responses={200: StockLevelOutput},
        parameters=[IDEMPOTENCY_KEY],
        description="Correct on_hand by a signed, non-zero delta (damage, found stock).",
    )
    def post(self, request):
        data = validated(self.InputSerializer, request)
        level = services.stock_adjust(
            sku=data["sku"],
            location=data["location"],
            delta=data["delta"],
            audit=api_audit(
                request, reason=data["reason"], reason_code=data.get("reason_code", "")
            ),
        )
        return stock_level_response(level)


class StockCountApi(IdempotentMixin, APIView):
    class InputSerializer(StrictSerializer):
        sku = _sku_field()
        location = _location_field()
        counted = StrictIntegerField(min_value=0, max_value=MAX_STOCK_QUANTITY)
        reason = _reason_field()
        reason_code = ReasonCodeField()

    @extend_schema(
        operation_id="stock_count",
        request=InputSerializer,
        responses={200: StockLevelOutput},
        parameters=[IDEMPOTENCY_KEY],
        description=(
            "Set on_hand from a physical count. A count below the reserved units is 409 "
            "`count_below_reserved`."
        ),
    )
    def post(self, request):
        data = validated(self.InputSerializer, request)
        level = services.stock_count(
            sku=data["sku"],
            location=data["location"],
            counted=data["counted"],
            audit=api_audit(
                request, reason=data["reason"], reason_code=data.get("reason_code", "")
            ),
        )
        return stock_level_response(level)


class StockThresholdsApi(IdempotentMixin, APIView):
    class InputSerializer(StrictSerializer):
        sku = _sku_field()
        location = _location_field()
        reorder_point = StrictIntegerField(min_value=0, max_value=MAX_STOCK_QUANTITY)
        safety_stock = StrictIntegerField(min_value=0, max_value=MAX_STOCK_QUANTITY)
        reason_code = ReasonCodeField()

    @extend_schema(
        operation_id="stock_set_thresholds",
        request=InputSerializer,
        responses={200: StockLevelOutput},
        parameters=[IDEMPOTENCY_KEY],
        description="Set the reorder point and safety stock; `stock.low` fires on crossing.",
    )
    def post(self, request):
        data = validated(self.InputSerializer, request)
        level = services.stock_set_thresholds(
            sku=data["sku"],
            location=data["location"],
            reorder_point=data["reorder_point"],
            safety_stock=data["safety_stock"],
            audit=api_audit(request, reason_code=data.get("reason_code", "")),
        )
        return stock_level_response(level)


# --- Transfers ------------------------------------------------------------------------------


class TransferOutput(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku")
    from_location = serializers.CharField(source="from_location.code")
    to_location = serializers.CharField(source="to_location.code")

    class Meta:
        model = Transfer
        fields = [
            "id",
            "sku",
            "from_location",
            "to_location",
            "quantity",
            "status",
            "reason",
            "version",
            "created_at",
            "updated_at",
        ]


class TransferFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=TransferStatus.choices)
    sku = django_filters.CharFilter(field_name="product__sku")

    class Meta:
        model = Transfer
        fields = []


def transfer_response(transfer_id: int, *, status_code: int = status.HTTP_200_OK) -> Response:
    transfer = transfer_get(transfer_id=transfer_id)
    headers = {"ETag": etag(transfer.version)}
    if status_code == status.HTTP_201_CREATED:
        headers["Location"] = f"/api/v1/transfers/{transfer.pk}/"
    return Response(TransferOutput(transfer).data, status=status_code, headers=headers)


class TransferListCreateApi(IdempotentMixin, ListAPIView):
    serializer_class = TransferOutput
    filterset_class = TransferFilter

    class InputSerializer(StrictSerializer):
        sku = _sku_field()
        from_location = _location_field()
        to_location = _location_field()
        quantity = _quantity_field()
        reason = _reason_field(required=False)
        reason_code = ReasonCodeField()

    def get_queryset(self):
        return transfer_list()

    @extend_schema(operation_id="transfers_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="transfers_create",
        request=InputSerializer,
        responses={201: TransferOutput},
        parameters=[IDEMPOTENCY_KEY],
        description=(
            "Ship stock: it leaves from_location at once and shows as in_transit at "
            "to_location until the transfer is received (or cancelled)."
        ),
    )
    def post(self, request):
        data = validated(self.InputSerializer, request)
        transfer = services.transfer_create(
            sku=data["sku"],
            from_location=data["from_location"],
            to_location=data["to_location"],
            quantity=data["quantity"],
            audit=api_audit(
                request, reason=data.get("reason", ""), reason_code=data.get("reason_code", "")
            ),
        )
        return transfer_response(transfer.pk, status_code=status.HTTP_201_CREATED)


class TransferDetailApi(APIView):
    @extend_schema(operation_id="transfers_retrieve", responses={200: TransferOutput})
    def get(self, request, transfer_id: int):
        return transfer_response(transfer_id)


class TransferReceiveApi(_TransitionApi):
    service = staticmethod(services.transfer_receive)
    respond = staticmethod(transfer_response)
    output = TransferOutput
    id_kwarg = "transfer_id"
    operation_id = "transfers_receive"
    operation_description = "The goods arrived: in_transit at to_location becomes on_hand there."


class TransferCancelApi(_TransitionApi):
    service = staticmethod(services.transfer_cancel)
    respond = staticmethod(transfer_response)
    output = TransferOutput
    id_kwarg = "transfer_id"
    operation_id = "transfers_cancel"
    operation_description = "The goods go back on hand at from_location."


# --- Reservations ---------------------------------------------------------------------------


class AllocationOutput(serializers.ModelSerializer):
    location = serializers.CharField(source="location.code")

    class Meta:
        model = ReservationAllocation
        fields = ["location", "quantity", "backordered"]


class ReservationOutput(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku")
    order = serializers.IntegerField(source="order_id", allow_null=True)
    allocations = AllocationOutput(many=True)

    class Meta:
        model = Reservation
        fields = [
            "id",
            "sku",
            "quantity",
            "status",
            "expires_at",
            "reference",
            "order",
            "version",
            "created_at",
            "updated_at",
            "allocations",
        ]


class ReservationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ReservationStatus.choices)
    sku = django_filters.CharFilter(field_name="product__sku")
    order = IdFilter(field_name="order_id")

    class Meta:
        model = Reservation
        fields = []


def reservation_response(reservation_id: int, *, status_code: int = status.HTTP_200_OK) -> Response:
    reservation = reservation_get(reservation_id=reservation_id)
    headers = {"ETag": etag(reservation.version)}
    if status_code == status.HTTP_201_CREATED:
        headers["Location"] = f"/api/v1/reservations/{reservation.pk}/"
    return Response(ReservationOutput(reservation).data, status=status_code, headers=headers)


class ReservationListCreateApi(IdempotentMixin, ListAPIView):
    serializer_class = ReservationOutput
    filterset_class = ReservationFilter

    class InputSerializer(StrictSerializer):
        sku = _sku_field()
        quantity = _quantity_field()
        location = _location_field(
            required=False,
            allow_null=True,
            help_text="Hold the stock at this location; without it, across active locations "
            "by priority.",
        )
        expires_at = AwareDateTimeField(
            required=False,
            help_text="ISO-8601 with an offset, in the future and at most 7 days from now "
            "(like ttl_seconds).",
        )
        ttl_seconds = StrictIntegerField(
            min_value=1,
            max_value=services.MAX_RESERVATION_TTL_SECONDS,
            required=False,
            help_text="Expire this many seconds from now (instead of expires_at).",
        )
        reference = serializers.CharField(max_length=100, allow_blank=True, required=False)
        reason = _reason_field(required=False)
        reason_code = ReasonCodeField()

        def validate(self, data):
            if "expires_at" in data and "ttl_seconds" in data:
                raise serializers.ValidationError(
                    "Give either expires_at or ttl_seconds, not both.", code="exclusive"
                )
            ttl = data.pop("ttl_seconds", None)
            if ttl is not None:
                data["expires_at"] = timezone.now() + timedelta(seconds=ttl)
            return data

    def get_queryset(self):
        return reservation_list()

    @extend_schema(operation_id="reservations_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="reservations_create",
        request=InputSerializer,
        responses={201: ReservationOutput},
        parameters=[IDEMPOTENCY_KEY],
        description=(
            "Hold stock. Without expires_at or ttl_seconds it expires after the default TTL. "
            "409 `insufficient_stock` when not enough is available (unless the product "
            "allows backorders)."
        ),
    )
    def post(self, request):
        data = validated(self.InputSerializer, request)
        reservation = services.reservation_create(
            sku=data["sku"],
            quantity=data["quantity"],
            location=data.get("location") or None,
            expires_at=data.get("expires_at"),
            reference=data.get("reference", ""),
            audit=api_audit(
                request, reason=data.get("reason", ""), reason_code=data.get("reason_code", "")
            ),
        )
        return reservation_response(reservation.pk, status_code=status.HTTP_201_CREATED)


class ReservationDetailApi(APIView):
    @extend_schema(operation_id="reservations_retrieve", responses={200: ReservationOutput})
    def get(self, request, reservation_id: int):
        return reservation_response(reservation_id)


class ReservationConfirmApi(_TransitionApi):
    service = staticmethod(services.reservation_confirm)
    respond = staticmethod(reservation_response)
    output = ReservationOutput
    id_kwarg = "reservation_id"
    operation_id = "reservations_confirm"
    operation_description = (
        "Consume the reservation: on_hand and reserved both drop by its quantity."
    )


class ReservationCancelApi(_TransitionApi):
    service = staticmethod(services.reservation_cancel)
    respond = staticmethod(reservation_response)
    output = ReservationOutput
    id_kwarg = "reservation_id"
    operation_id = "reservations_cancel"
    operation_description = "Release the reserved stock."
