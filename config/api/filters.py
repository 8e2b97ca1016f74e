import django_filters
from django import forms
from django.utils.dateparse import parse_datetime
from django_filters.rest_framework import DjangoFilterBackend


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


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend, minus the cost of building a FilterSet and validating its
    form on requests that pass no filter at all (4.31 -> 4.01 ms of Python per history page,
    make bench-profile).
    With no filter parameter every filter is skipped anyway, so the result is the same."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None and not any(
            param.startswith(name)
            for param in request.query_params
            for name in filterset_class.base_filters
        ):
            return queryset
        return super().filter_queryset(request, queryset, view)
