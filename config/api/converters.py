"""URL path converters of the API."""

from config.api.filters import MAX_ID


class IdConverter:
    """A row id in a path: 1 to the largest bigint. Anything else does not match, so the
    path is an ordinary 404, never a query that overflows."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValueError(value)
        return number

    def to_url(self, value: int) -> str:
        return str(value)
