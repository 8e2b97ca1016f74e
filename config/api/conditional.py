"""ETag / If-Match for optimistic concurrency. The ETag of an aggregate is its version."""

import re

from rest_framework.exceptions import ValidationError

_ETAG = re.compile(r'^(?:W/)?(?:"([0-9]{1,10})"|([0-9]{1,10}))$')


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(request) -> int | None:
    """The version named by If-Match, None when absent or `*`."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    match = _ETAG.match(header.strip())
    if not match:
        raise ValidationError(
            {"If-Match": [f'If-Match must be an ETag such as "3", not {header!r}.']}
        )
    return int(match.group(1) or match.group(2))
