"""Thin HTTP callers of orders.services and orders.selectors: parse, call one service,
render. Every write accepts Idempotency-Key; every order write accepts If-Match."""

import orjson
from django.http import HttpResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.common import IDEMPOTENCY_KEY, IF_MATCH, validated
from config.api.conditional import etag, expected_version
from config.api.fields import BoundedListField, StrictIntegerField
from config.api.pagination import TimelinePagination
from config.api.replica import ReplicaReadMixin
from config.api.schema import ProblemSerializer
from config.api.serializers import StrictSerializer, parse_aware_datetime, plain_text
from history.apis import LedgerListApi
from history.audit import api_audit, reason_codes
from history.cache import MISS, CachePrefetch, cache_fill, cache_read
from history.filters import TimelineFilter
from history.idempotency import IdempotentMixin
from history.models import AccessAction, OrderLedgerEntry
from history.selectors import order_as_of, order_timeline
from history.serializers import ReasonCodeField
from orders import services
from orders.filters import OrderFilter
from orders.models import MAX_LINE_QUANTITY, Customer, Order
from orders.selectors import (
    customer_list,
    order_exists,
    order_get,
    order_list,
    order_representation,
)


class LineQuantityInput(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    quantity = StrictIntegerField(min_value=0, max_value=MAX_LINE_QUANTITY)


class LinesField(BoundedListField):
    child = LineQuantityInput()

    def __init__(self, **kwargs):
        super().__init__(allow_empty=False, max_length=1000, **kwargs)

    def to_internal_value(self, data):
        lines = super().to_internal_value(data)
        seen = set()
        duplicates = sorted(
            {line["sku"] for line in lines if line["sku"] in seen or seen.add(line["sku"])}
        )
        if duplicates:
            raise ValidationError(
                f"Each sku may appear once per request; repeated: {', '.join(duplicates)}.",
                code="duplicate_sku",
            )
        return {line["sku"]: line["quantity"] for line in lines}


class OrderLineOutput(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    quantity = serializers.IntegerField()


class OrderOutput(serializers.ModelSerializer):
    lines = OrderLineOutput(many=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "customer",
            "reference",
            "status",
            "version",
            "created_at",
            "updated_at",
            "lines",
        ]


class OrderAsOfOutput(serializers.Serializer):
    id = serializers.IntegerField(source="order_id")
    version = serializers.IntegerField()
    status = serializers.CharField()
    as_of = serializers.DateTimeField()
    lines = serializers.SerializerMethodField()

    def get_lines(self, state) -> list[dict]:
        return [{"sku": sku, "quantity": qty} for sku, qty in state.quantities.items()]


def order_response(order_id: int, *, status_code: int = status.HTTP_200_OK) -> Response:
    data = order_representation(order_id=order_id)
    headers = {"ETag": etag(data["version"])}
    if status_code == status.HTTP_201_CREATED:
        headers["Location"] = f"/api/v1/orders/{order_id}/"
    return Response(data, status=status_code, headers=headers)


def cached_order_response(order_id: int, prefetched: CachePrefetch | None = None) -> HttpResponse:
    """Serve the order from the Redis cache when fresh, else from the database (and fill
    the cache). `X-Cache` says which: hit, miss, degraded (Redis unavailable) or off (no
    Redis configured)."""
    body, version, cache_status = cache_read("order", str(order_id), prefetched)
    if body is None:
        data = order_representation(order_id=order_id)
        body, version = orjson.dumps(data), data["version"]
        if cache_status == MISS:
            cache_fill("order", str(order_id), version, body)
    response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag(version)
    response["X-Cache"] = cache_status
    return response


class OrderListCreateApi(ReplicaReadMixin, IdempotentMixin, ListAPIView):
    serializer_class = OrderOutput
    filterset_class = OrderFilter

    class InputSerializer(StrictSerializer):
        customer = StrictIntegerField(allow_null=True, required=False, min_value=1)
        reference = serializers.CharField(max_length=100, allow_blank=True, required=False)
        lines = LinesField()
        reason = serializers.CharField(max_length=500, allow_blank=True, required=False)
        reason_code = ReasonCodeField()

    def get_queryset(self):
        return order_list()

    @extend_schema(operation_id="orders_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="orders_create",
        request=InputSerializer,
        responses={201: OrderOutput},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request):
        data = validated(self.InputSerializer, request)
        order = services.order_create(
            customer_id=data.get("customer"),
            reference=data.get("reference", ""),
            lines=data["lines"],
            audit=api_audit(
                request, reason=data.get("reason", ""), reason_code=data.get("reason_code", "")
            ),
        )
        return order_response(order.pk, status_code=status.HTTP_201_CREATED)


class OrderDetailApi(ReplicaReadMixin, IdempotentMixin, APIView):
    class PatchInput(StrictSerializer):
        lines = LinesField()
        reason = serializers.CharField(max_length=500, allow_blank=True, required=False)
        reason_code = ReasonCodeField()

    _prefetched: CachePrefetch | None = None

    def initial(self, request, *args, **kwargs):
        if request.method == "GET" and "as_of" not in request.query_params:
            self._prefetched = CachePrefetch("order", str(kwargs["order_id"]))
            request.redis_riders = [self._prefetched]  # read with the token (history.cache)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="orders_retrieve",
        parameters=[
            OpenApiParameter(
                "as_of",
                {"type": "string", "format": "date-time", "minLength": 1},
                description="ISO-8601 time with offset: the order as it stood then.",
            )
        ],
        responses={
            200: OrderOutput,
            410: OpenApiResponse(
                ProblemSerializer,
                description="as_of needs changes of a month archived out of the database "
                "(code `ledger_archived`).",
            ),
        },
    )
    def get(self, request, order_id: int):
        as_of = request.query_params.get("as_of")
        if as_of is None:
            return cached_order_response(order_id, self._prefetched)
        at = parse_aware_datetime(as_of, name="as_of")
        order_get(order_id=order_id)
        state = order_as_of(order_id=order_id, at=at)
        if state is None:
            raise ValidationError({"as_of": [f"Order {order_id} did not exist yet at {as_of}."]})
        state.as_of = at
        return Response(OrderAsOfOutput(state).data, headers={"ETag": etag(state.version)})

    @extend_schema(
        operation_id="orders_set_quantities",
        request=PatchInput,
        responses={200: OrderOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
        description="Set absolute quantities; a sku not on the order adds a line.",
    )
    def patch(self, request, order_id: int):
        version = expected_version(request)
        data = patch_well_formed(request.data) or validated(self.PatchInput, request)
        services.order_set_quantities(
            order_id=order_id,
            quantities=data["lines"],
            expected_version=version,
            audit=api_audit(
                request, reason=data.get("reason", ""), reason_code=data.get("reason_code", "")
            ),
        )
        return order_response(order_id)


class OrderAdjustApi(IdempotentMixin, APIView):
    class InputSerializer(StrictSerializer):
        sku = serializers.CharField(max_length=64)
        delta = StrictIntegerField(min_value=-MAX_LINE_QUANTITY, max_value=MAX_LINE_QUANTITY)
        reason = serializers.CharField(max_length=500)
        reason_code = ReasonCodeField()

    @extend_schema(
        operation_id="orders_adjust",
        request=InputSerializer,
        responses={200: OrderOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
        description="Apply a signed delta to one line's quantity.",
    )
    def post(self, request, order_id: int):
        version = expected_version(request)
        data = adjust_well_formed(request.data) or validated(self.InputSerializer, request)
        services.order_adjust(
            order_id=order_id,
            deltas={data["sku"]: data["delta"]},
            expected_version=version,
            audit=api_audit(
                request, reason=data.get("reason", ""), reason_code=data.get("reason_code", "")
            ),
        )
        return order_response(order_id)


class OrderCancelApi(IdempotentMixin, APIView):
    class InputSerializer(StrictSerializer):
        reason = serializers.CharField(max_length=500, allow_blank=True, required=False)
        reason_code = ReasonCodeField()

    @extend_schema(
        operation_id="orders_cancel",
        request=InputSerializer,
        responses={200: OrderOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
    )
    def post(self, request, order_id: int):
        version = expected_version(request)
        data = validated(self.InputSerializer, request)
        services.order_cancel(
            order_id=order_id,
            expected_version=version,
            audit=api_audit(
                request, reason=data.get("reason", ""), reason_code=data.get("reason_code", "")
            ),
        )
        return order_response(order_id)


class OrderFulfilApi(IdempotentMixin, APIView):
    class InputSerializer(StrictSerializer):
        reason = serializers.CharField(max_length=500, allow_blank=True, required=False)
        reason_code = ReasonCodeField()

    @extend_schema(
        operation_id="orders_fulfil",
        request=InputSerializer,
        responses={200: OrderOutput},
        parameters=[IF_MATCH, IDEMPOTENCY_KEY],
        description=(
            "Ship the order: its stock reservations are consumed and it can no longer be "
            "changed. 409 `insufficient_stock` when backordered units are not on hand yet."
        ),
    )
    def post(self, request, order_id: int):
        version = expected_version(request)
        data = validated(self.InputSerializer, request)
        services.order_fulfil(
            order_id=order_id,
            expected_version=version,
            audit=api_audit(
                request, reason=data.get("reason", ""), reason_code=data.get("reason_code", "")
            ),
        )
        return order_response(order_id)


# The quick checks in front of the single commands' serializers, as bulk has
# (orders.bulk_apis.well_formed): each returns the body as the serializer would validate it
# when it can tell that it is valid, else None, and the serializer judges it and words the
# errors. They accept a subset of what the serializers accept (plain ASCII text with no
# surrounding whitespace, JSON integers in range), so they never let through what a
# serializer refuses (a property test holds them to that). DRF building and running the
# serializer was about a tenth of an adjustment's Python CPU (make bench-profile).


def _reason_fields(body: dict, data: dict, *, reason_required: bool) -> bool:
    """`reason` and `reason_code` of a command body into data; False if not plainly valid."""
    if "reason" in body:
        if not plain_text(body["reason"], max_length=500, allow_blank=not reason_required):
            return False
        data["reason"] = body["reason"]
    elif reason_required:
        return False
    if "reason_code" in body:
        code = body["reason_code"]
        if not (type(code) is str and code in reason_codes()):
            return False
        data["reason_code"] = code
    return True


_ADJUST_FIELDS = frozenset({"sku", "delta", "reason", "reason_code"})
_PATCH_FIELDS = frozenset({"lines", "reason", "reason_code"})


def adjust_well_formed(body) -> dict | None:
    """OrderAdjustApi.InputSerializer's validated data, when plainly valid; else None."""
    if type(body) is not dict or not body.keys() <= _ADJUST_FIELDS:
        return None
    sku, delta = body.get("sku"), body.get("delta")
    if not plain_text(sku, max_length=64, allow_blank=False):
        return None
    if not (type(delta) is int and -MAX_LINE_QUANTITY <= delta <= MAX_LINE_QUANTITY):
        return None
    data = {"sku": sku, "delta": delta}
    return data if _reason_fields(body, data, reason_required=True) else None


def patch_well_formed(body) -> dict | None:
    """OrderDetailApi.PatchInput's validated data (lines as {sku: quantity}), when plainly
    valid; else None."""
    if type(body) is not dict or not body.keys() <= _PATCH_FIELDS:
        return None
    lines = body.get("lines")
    if type(lines) is not list or not 1 <= len(lines) <= 1000:
        return None
    quantities = {}
    for line in lines:
        if type(line) is not dict or line.keys() != {"sku", "quantity"}:
            return None
        sku, quantity = line["sku"], line["quantity"]
        if not plain_text(sku, max_length=64, allow_blank=False) or sku in quantities:
            return None
        if not (type(quantity) is int and 0 <= quantity <= MAX_LINE_QUANTITY):
            return None
        quantities[sku] = quantity
    data = {"lines": quantities}
    return data if _reason_fields(body, data, reason_required=False) else None


@extend_schema_view(
    get=extend_schema(
        operation_id="order_history",
        parameters=[LedgerListApi.FORMAT],
        description="The order's timeline, oldest first. Filter by since/until/sku/actor.",
    )
)
class OrderHistoryApi(LedgerListApi):
    pagination_class = TimelinePagination
    filterset_class = TimelineFilter
    export_action = AccessAction.EXPORT_ORDER_HISTORY

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return OrderLedgerEntry.objects.none()
        order_id = self.kwargs["order_id"]
        order_exists(order_id=order_id)
        self.csv_filename = f"order-{order_id}-history.csv"
        self.export_target = f"order {order_id}"
        return order_timeline(order_id=order_id)


class CustomerOutput(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "name", "email", "created_at"]


class CustomerListCreateApi(IdempotentMixin, ListAPIView):
    serializer_class = CustomerOutput

    class InputSerializer(StrictSerializer):
        name = serializers.CharField(max_length=200)
        email = serializers.EmailField(allow_blank=True, required=False)

    def get_queryset(self):
        return customer_list()

    @extend_schema(
        operation_id="customers_create",
        request=InputSerializer,
        responses={201: CustomerOutput},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request):
        data = validated(self.InputSerializer, request)
        customer = services.customer_create(name=data["name"], email=data.get("email", ""))
        return Response(CustomerOutput(customer).data, status=status.HTTP_201_CREATED)


class CustomerDetailApi(RetrieveAPIView):
    serializer_class = CustomerOutput
    lookup_url_kwarg = "customer_id"

    def get_queryset(self):
        return customer_list()
