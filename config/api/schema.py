"""OpenAPI: every operation documents its problem-details error responses."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from config.api.problems import PROBLEM_CONTENT_TYPE


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


class ProblemAutoSchema(AutoSchema):
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
