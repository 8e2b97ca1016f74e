"""POST /api/v1/adjustments/bulk/: many single-line quantity changes in one request."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.common import IDEMPOTENCY_KEY, validated
from config.api.fields import BoundedListField, StrictIntegerField
from config.api.problems import PROBLEM_TYPE_PREFIX
from config.api.serializers import StrictSerializer, plain_text
from history.audit import api_audit, reason_codes
from history.idempotency import IdempotentMixin
from history.serializers import ReasonCodeField
from orders.models import MAX_LINE_QUANTITY
from orders.planner import LineRequest, OrderCommand, Outcome, OutcomeStatus
from orders.services import MAX_BULK_ITEMS, order_adjustments_bulk

_MAX_ID = 2**63 - 1
_MAX_VERSION = 2**31 - 1

# A refused command is an `error` item in the response.
_STATUSES = {
    OutcomeStatus.APPLIED: "applied",
    OutcomeStatus.UNCHANGED: "unchanged",
    OutcomeStatus.REFUSED: "error",
}

ATOMIC = OpenApiParameter(
    "atomic",
    bool,
    description=(
        "true: all or nothing; if any item fails, nothing is written and the response is a "
        "problem (`batch_rejected`) listing the failing items in `errors`. false (default): "
        "every item that can be applied is, and each failure is reported in its result."
    ),
)


class BulkItemProblemOutput(serializers.Serializer):
    type = serializers.CharField()
    code = serializers.CharField(
        help_text=(
            "not_found, version_conflict, order_not_editable, unknown_sku, "
            "quantity_out_of_range or insufficient_stock."
        )
    )
    status = serializers.IntegerField(help_text="The HTTP status a single change would get.")
    title = serializers.CharField()
    detail = serializers.CharField()
    current_version = serializers.IntegerField(
        required=False, help_text="version_conflict: the order's version before this item."
    )
    available = serializers.IntegerField(required=False, help_text="insufficient_stock.")


class BulkItemResultOutput(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the item in the request.")
    order = serializers.IntegerField()
    sku = serializers.CharField()
    status = serializers.ChoiceField(choices=list(_STATUSES.values()))
    version = serializers.IntegerField(
        allow_null=True,
        help_text="applied: the version this item produced; unchanged: the current one.",
    )
    quantity = serializers.IntegerField(allow_null=True, help_text="The line quantity after it.")
    delta = serializers.IntegerField(allow_null=True)
    error = BulkItemProblemOutput(required=False, help_text="Only when status is error.")


class BulkAdjustmentItemInput(StrictSerializer):
    order = StrictIntegerField(min_value=1, max_value=_MAX_ID)
    sku = serializers.CharField(max_length=64)
    quantity = StrictIntegerField(min_value=0, max_value=MAX_LINE_QUANTITY, required=False)
    delta = StrictIntegerField(
        min_value=-MAX_LINE_QUANTITY, max_value=MAX_LINE_QUANTITY, required=False
    )
    expected_version = StrictIntegerField(
        min_value=1,
        max_value=_MAX_VERSION,
        required=False,
        help_text=(
            "The order's version just before this item applies: its version when the "
            "batch starts, plus one for each earlier item of the batch that changed it."
        ),
    )


class AdjustmentsBulkApi(IdempotentMixin, APIView):
    class InputSerializer(StrictSerializer):
        items = BoundedListField(
            child=BulkAdjustmentItemInput(),
            allow_empty=False,
            min_length=1,
            max_length=MAX_BULK_ITEMS,
        )
        reason = serializers.CharField(max_length=500, allow_blank=True, required=False)
        reason_code = ReasonCodeField()

    class OutputSerializer(serializers.Serializer):
        results = BulkItemResultOutput(many=True)
        applied = serializers.IntegerField()
        failed = serializers.IntegerField()

    @extend_schema(
        operation_id="adjustments_bulk",
        request=InputSerializer,
        responses={200: OutputSerializer},
        parameters=[ATOMIC, IDEMPOTENCY_KEY],
        description=(
            f"Up to {MAX_BULK_ITEMS} quantity changes, each `{{order, sku, quantity | delta, "
            "expected_version?}`. Every item is its own command: it bumps its order's version "
            "by one and writes one ledger row and one `order.quantity_adjusted` event. Items "
            "for the same order apply in request order. An item that changes nothing is "
            "`unchanged`. Tracked stock is reserved or released per order for the net change "
            "of its items; if that is refused, all of that order's items fail with "
            "`insufficient_stock`. An atomic batch that is refused writes nothing and "
            "answers 400 when an item names an order or sku that does not exist, 412 when "
            "every failure is a version conflict, else 409."
        ),
    )
    def post(self, request):
        atomic = _atomic(request)
        data = well_formed(request.data) or validated(self.InputSerializer, request)
        commands = [
            OrderCommand(
                item["order"],
                (LineRequest(item["sku"], item.get("quantity"), item.get("delta")),),
                item.get("expected_version"),
            )
            for item in data["items"]
        ]
        outcomes = order_adjustments_bulk(
            commands=commands,
            atomic=atomic,
            audit=api_audit(
                request, reason=data.get("reason", ""), reason_code=data.get("reason_code", "")
            ),
        )
        body = [item_result(index, outcome) for index, outcome in enumerate(outcomes)]
        failed = sum(1 for o in outcomes if o.status == OutcomeStatus.REFUSED)
        return Response({"results": body, "applied": len(outcomes) - failed, "failed": failed})


_ITEM_FIELDS = {"order", "sku", "quantity", "delta", "expected_version"}
_INTEGER_RANGES = {
    "order": (1, _MAX_ID),
    "quantity": (0, MAX_LINE_QUANTITY),
    "delta": (-MAX_LINE_QUANTITY, MAX_LINE_QUANTITY),
    "expected_version": (1, _MAX_VERSION),
}


def well_formed(body) -> dict | None:
    """The body as InputSerializer would validate it, when a quick check can tell that it
    is valid; otherwise None, and the serializer judges it and words the errors. The check
    accepts a subset of what the serializer accepts (plain ASCII text with no surrounding
    whitespace, JSON integers in range), so it never lets through what the serializer would
    refuse. Whether an item gives a quantity or a delta is the planner's rule (check_shape).
    DRF's per-item validation was the largest item in a bulk request's profile
    (make bench-profile BENCH_ARGS='bulk --cprofile')."""
    if not isinstance(body, dict) or not body.keys() <= {"items", "reason", "reason_code"}:
        return None
    items, reason = body.get("items"), body.get("reason", "")
    reason_code = body.get("reason_code", "")
    if "reason_code" in body and not (type(reason_code) is str and reason_code in reason_codes()):
        return None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BULK_ITEMS:
        return None
    if not plain_text(reason, max_length=500, allow_blank=True):
        return None
    for item in items:
        if not isinstance(item, dict) or not item.keys() <= _ITEM_FIELDS:
            return None
        if "order" not in item:
            return None
        if not plain_text(item.get("sku"), max_length=64, allow_blank=False):
            return None
        for name, (low, high) in _INTEGER_RANGES.items():
            value = item.get(name)
            if name in item and not (type(value) is int and low <= value <= high):
                return None
    data = {"items": items, "reason": reason}
    if "reason_code" in body:
        data["reason_code"] = reason_code
    return data


def _atomic(request) -> bool:
    value = request.query_params.get("atomic", "false")
    if value not in ("true", "false"):
        raise ValidationError({"atomic": [f"Must be true or false, not {value!r}."]})
    return value == "true"


def item_result(index: int, outcome: Outcome) -> dict:
    """One item of the response: what became of the command at `index`."""
    line = outcome.lines[0] if outcome.lines else None
    body = {
        "index": index,
        "order": outcome.command.order_id,
        "sku": outcome.command.lines[0].sku,
        "status": _STATUSES[outcome.status],
        "version": outcome.version,
        "quantity": line.after if line else None,
        "delta": line.delta if line else None,
    }
    if outcome.error is not None:
        problem = outcome.error.problem()
        body["error"] = {"type": PROBLEM_TYPE_PREFIX + problem["code"], **problem}
    return body
