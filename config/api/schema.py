"""OpenAPI: every operation documents its problem-details error responses, and carries one
tag (its group in the Swagger UI) and a one-line summary."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from config import replica
from config.api.problems import PROBLEM_CONTENT_TYPE
from config.api.replica import ReplicaReadMixin


class FieldErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)
    pointer = serializers.CharField(help_text="JSON pointer into the request body.")


class ProblemSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="URN naming the problem type.")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Stable machine-readable code.")
    errors = FieldErrorSerializer(many=True, required=False)
    current_version = serializers.IntegerField(
        required=False, help_text="On 412: the version the aggregate is at now."
    )

    class Meta:
        ref_name = "Problem"


_ERRORS = {
    "400": "Invalid input (field errors listed in `errors`).",
    "401": "Not authenticated.",
    "403": "Authenticated, but the role does not allow this.",
    "404": "Not found.",
    "429": "Rate limit exceeded (per role and token); retry after `Retry-After` seconds.",
}
_WRITE_ERRORS = {
    "409": "Domain conflict, or the same Idempotency-Key is still in flight.",
    "412": "If-Match names a stale version; the response carries the current one.",
    "422": "Idempotency-Key reused with a different request body.",
}


# The Swagger UI's groups, in this order (SPECTACULAR_SETTINGS["TAGS"] describes them). An
# operation's tag is that of the first prefix its path starts with.
TAGS_BY_PREFIX = [
    ("/api/v1/orders/{order_id}/history/", "history"),
    ("/api/v1/orders/{order_id}/proof/", "history"),
    ("/api/v1/adjustments/bulk/", "orders"),
    ("/api/v1/adjustments/", "history"),
    ("/api/v1/stock/history/", "history"),
    ("/api/v1/stock/{sku}/proof/", "history"),
    ("/api/v1/seals/", "history"),
    ("/api/v1/orders/", "orders"),
    ("/api/v1/demand/", "orders"),
    ("/api/v1/stock/", "stock"),
    ("/api/v1/reservations/", "reservations"),
    ("/api/v1/transfers/", "transfers"),
    ("/api/v1/locations/", "locations"),
    ("/api/v1/products/", "catalogue"),
    ("/api/v1/customers/", "catalogue"),
    ("/api/v1/tokens/", "operations"),
]

# One line per operation, shown beside it in the Swagger UI; its docstring (if any) is the
# longer description underneath.
SUMMARIES = {
    ("GET", "/api/v1/orders/"): "List orders",
    ("POST", "/api/v1/orders/"): "Create an order",
    ("GET", "/api/v1/orders/{order_id}/"): "Get an order (now, or as of a time)",
    ("PATCH", "/api/v1/orders/{order_id}/"): "Set line quantities",
    ("POST", "/api/v1/orders/{order_id}/adjust/"): "Adjust one line by a delta",
    ("POST", "/api/v1/orders/{order_id}/cancel/"): "Cancel an order",
    ("POST", "/api/v1/orders/{order_id}/fulfil/"): "Fulfil (ship) an order",
    ("POST", "/api/v1/adjustments/bulk/"): "Apply many quantity changes at once",
    ("GET", "/api/v1/demand/"): "Open demand per sku",
    ("GET", "/api/v1/demand/{sku}/"): "Open demand of one sku, by day",
    ("GET", "/api/v1/orders/{order_id}/history/"): "An order's timeline",
    ("GET", "/api/v1/orders/{order_id}/proof/"): "Proof of an order's chain",
    ("GET", "/api/v1/adjustments/"): "The order ledger (JSON or CSV)",
    ("GET", "/api/v1/stock/history/"): "The stock ledger (JSON or CSV)",
    ("GET", "/api/v1/stock/{sku}/proof/"): "Proof of a stock level's chain",
    ("GET", "/api/v1/seals/"): "List ledger seals",
    ("GET", "/api/v1/seals/{number}/"): "Get a ledger seal",
    ("GET", "/api/v1/seals/consistency/"): "Consistency proof between two seals",
    ("GET", "/api/v1/seals/key/"): "The seals' public key",
    ("GET", "/api/v1/stock/"): "List stock levels",
    ("GET", "/api/v1/stock/{sku}/"): "A sku's stock per location",
    ("GET", "/api/v1/stock/{sku}/forecast/"): "A sku's demand forecast and days of cover",
    ("GET", "/api/v1/stock/low/"): "Stock levels at or below their reorder point",
    ("POST", "/api/v1/stock/receive/"): "Receive goods",
    ("POST", "/api/v1/stock/issue/"): "Issue goods without a reservation",
    ("POST", "/api/v1/stock/adjust/"): "Correct on-hand stock by a delta",
    ("POST", "/api/v1/stock/count/"): "Record a physical count",
    ("POST", "/api/v1/stock/thresholds/"): "Set reorder point and safety stock",
    ("GET", "/api/v1/reservations/"): "List reservations",
    ("POST", "/api/v1/reservations/"): "Reserve stock",
    ("GET", "/api/v1/reservations/{reservation_id}/"): "Get a reservation",
    ("POST", "/api/v1/reservations/{reservation_id}/confirm/"): "Confirm (consume) a reservation",
    ("POST", "/api/v1/reservations/{reservation_id}/cancel/"): "Cancel a reservation",
    ("GET", "/api/v1/transfers/"): "List transfers",
    ("POST", "/api/v1/transfers/"): "Ship stock to another location",
    ("GET", "/api/v1/transfers/{transfer_id}/"): "Get a transfer",
    ("POST", "/api/v1/transfers/{transfer_id}/receive/"): "Receive a transfer",
    ("POST", "/api/v1/transfers/{transfer_id}/cancel/"): "Cancel a transfer",
    ("GET", "/api/v1/locations/"): "List locations",
    ("POST", "/api/v1/locations/"): "Create a location",
    ("GET", "/api/v1/locations/{code}/"): "Get a location",
    ("GET", "/api/v1/products/"): "List products",
    ("POST", "/api/v1/products/"): "Create a product",
    ("GET", "/api/v1/products/{sku}/"): "Get a product",
    ("GET", "/api/v1/customers/"): "List customers",
    ("POST", "/api/v1/customers/"): "Create a customer",
    ("GET", "/api/v1/customers/{customer_id}/"): "Get a customer",
    ("GET", "/api/v1/tokens/"): "List your API tokens",
    ("POST", "/api/v1/tokens/"): "Create an API token",
    ("POST", "/api/v1/tokens/{token_id}/revoke/"): "Revoke an API token",
}


_SUCCESS_CODES = ["200", "201", "202", "204"]
# The read-replica headers (README, "Read replica"); sent only when a replica is configured.
_COMMIT_LSN = OpenApiParameter(
    replica.COMMIT_LSN_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=_SUCCESS_CODES,
    description="With a read replica: the primary's WAL position once this write committed. "
    "Send it back as `X-Min-LSN` to read at least this state.",
)
_MIN_LSN = OpenApiParameter(
    replica.MIN_LSN_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="With a read replica: an `X-Commit-LSN` this read must reflect; served by the "
    "replica only once it has replayed that far, by the primary otherwise.",
    pattern=r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$",
)
_READ_FROM = OpenApiParameter(
    replica.READ_FROM_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=_SUCCESS_CODES,
    enum=["primary", "replica"],
    description="With a read replica: which database served this read.",
)


class ProblemAutoSchema(AutoSchema):
    # extend_schema(tags=..., summary=...) on a view still wins: it overrides these methods.
    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method in ("POST", "PATCH", "PUT", "DELETE"):
            parameters.append(_COMMIT_LSN)
        elif self.method == "GET" and isinstance(self.view, ReplicaReadMixin):
            parameters += [_MIN_LSN, _READ_FROM]
        return parameters

    def get_tags(self):
        tags = [tag for prefix, tag in TAGS_BY_PREFIX if self.path.startswith(prefix)]
        return tags[:1] or super().get_tags()

    def get_summary(self):
        return super().get_summary() or SUMMARIES.get((self.method, self.path))

    def _get_filter_parameters(self):
        # config.api.filters.FilterBackend refuses a filter given empty (400): say so.
        parameters = super()._get_filter_parameters()
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if schema.get("type") == "string":
                schema.setdefault("minLength", 1)
        return parameters

    def _get_pagination_parameters(self):
        # config.api.pagination.StrictCursorPagination refuses a page_size below 1 (400).
        parameters = super()._get_pagination_parameters()
        for parameter in parameters:
            if parameter.get("name") == "page_size":
                parameter.setdefault("schema", {})["minimum"] = 1
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = dict(_ERRORS)
        # Writes that take Idempotency-Key (history.idempotency.IdempotentMixin); the
        # others (the caller's API tokens) have none of these.
        idempotent = self.method in getattr(self.view, "idempotent_methods", ())
        if self.method in ("POST", "PATCH", "PUT", "DELETE") and idempotent:
            errors.update(_WRITE_ERRORS)
        problem = self.resolve_serializer(ProblemSerializer, "response").ref
        for code, description in errors.items():
            responses.setdefault(
                code,
                {
                    "description": description,
                    "content": {PROBLEM_CONTENT_TYPE: {"schema": problem}},
                },
            )
        return responses

    def get_serializer_name(self, serializer, direction):
        # Nested `InputSerializer`s (one per view) are named after their view.
        qualname = type(serializer).__qualname__
        if "." in qualname:
            outer, inner = qualname.rsplit(".", 1)
            return outer.removesuffix("Api") + inner.removesuffix("Serializer")
        return super().get_serializer_name(serializer, direction)


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "config.api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token ot_<prefix>_<secret>`, from `manage.py issue_token` or "
            "POST /api/v1/tokens/ (with a signed-in session).",
        }
