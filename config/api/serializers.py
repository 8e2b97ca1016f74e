from datetime import datetime

from django.utils.dateparse import parse_datetime
from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know, so a typo such as `qty` is an error, not a no-op."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field."] for name in unknown}, code="unknown_field"
                )
        return super().to_internal_value(data)


def _parse_aware(value: str) -> datetime:
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(f"{value!r} is not an ISO-8601 date-time, e.g. 2026-01-31T12:00:00Z.")
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone; add Z or an offset such as +02:00.")
    return parsed


def parse_aware_datetime(value: str, *, name: str) -> datetime:
    """ISO-8601 with an explicit offset; a naive or malformed value is a 400."""
    try:
        return _parse_aware(value)
    except ValueError as exc:
        raise serializers.ValidationError({name: [str(exc)]}, code="invalid") from exc


def plain_text(value, *, max_length: int, allow_blank: bool) -> bool:
    """A str a DRF CharField of these options keeps unchanged: ASCII (no surrogates), no NUL,
    no surrounding whitespace (CharField would trim it). For the quick checks in front of a
    serializer, which accept a subset of what it accepts and leave the rest to it."""
    return (
        type(value) is str
        and (allow_blank or value != "")
        and len(value) <= max_length
        and value.isascii()
        and "\x00" not in value
        and value == value.strip()
    )


class AwareDateTimeField(serializers.DateTimeField):
    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="ISO-8601 with a timezone")
        try:
            return _parse_aware(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc), code="invalid") from exc
