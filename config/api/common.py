"""Pieces every API module shares: the audit of an API request, body validation and the
documented request headers."""

from drf_spectacular.utils import OpenApiParameter

from history.audit import Audit
from history.models import Source

IF_MATCH = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER, description='The ETag you read, e.g. "3".'
)
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="Retry-safe key: the same key and body replay the first response.",
)


def audit_from(request, reason: str = "") -> Audit:
    return Audit(
        actor=request.user.get_username(),
        source=Source.API,
        reason=reason,
        correlation_id=getattr(request._request, "correlation_id", ""),
        idempotency_key=request.headers.get("Idempotency-Key", ""),
    )


def validated(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
