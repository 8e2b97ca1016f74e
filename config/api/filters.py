import django_filters
from django import forms
from django.utils.dateparse import parse_datetime


class AwareDateTimeFormField(forms.CharField):
    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            raise forms.ValidationError(
                f"{value!r} is not an ISO-8601 date-time, e.g. 2026-01-31T12:00:00Z.",
                code="invalid",
            )
        if parsed.tzinfo is None:
            raise forms.ValidationError(
                f"{value!r} has no timezone; add Z or an offset such as +02:00.",
                code="invalid",
            )
        return parsed


class AwareDateTimeFilter(django_filters.Filter):
    """ISO-8601 date-time with an explicit offset; naive values are refused, not guessed."""

    field_class = AwareDateTimeFormField
