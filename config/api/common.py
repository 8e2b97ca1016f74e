"""Pieces every API module shares: body validation and the documented request headers."""

import re

from drf_spectacular.utils import OpenApiParameter

# The header formats, checked where the headers are read (config.api.conditional,
# history.idempotency) and published in the schema from the same patterns.
IF_MATCH_PATTERN = r'^(\*|(W/)?("[0-9]{1,10}"|[0-9]{1,10}))$'
IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"
IDEMPOTENCY_KEY_FORMAT = re.compile(IDEMPOTENCY_KEY_PATTERN)

IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    pattern=IF_MATCH_PATTERN,
    description='The ETag you read, e.g. "3" (or `*`: no version check).',
)
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    pattern=IDEMPOTENCY_KEY_PATTERN,
    description=(
        "Retry-safe key, 1 to 255 printable ASCII characters: the same key and body replay "
        "the first response."
    ),
)


def validated(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
