import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field

from config.api.filters import AwareDateTimeFilter, IdFilter
from history.audit import UNSPECIFIED, reason_codes
from history.models import OrderEventType, OrderLedgerEntry, Source


def _filter_reason_codes() -> tuple[str, ...]:
    # A filter may also look for the rows that were given no code.
    return (*reason_codes(), UNSPECIFIED)


class ReasonCodesFormField(forms.Field):
    """One or more reason codes, repeated (`?reason_code=a&reason_code=b`) or comma-separated
    (`?reason_code=a,b`); an empty or unknown one is refused."""

    widget = forms.SelectMultiple

    def to_python(self, value) -> list[str]:
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        codes = [code.strip() for item in values for code in str(item).split(",")]
        if any(not code for code in codes):
            raise forms.ValidationError("Must not be empty.", code="blank")
        known = _filter_reason_codes()
        unknown = [code for code in codes if code not in known]
        if unknown:
            raise forms.ValidationError(
                f"Unknown reason code: {', '.join(unknown)}; use one of: {', '.join(known)}.",
                code="invalid_choice",
            )
        return list(dict.fromkeys(codes))


@extend_schema_field(
    {"type": "array", "items": {"type": "string", "enum": list(_filter_reason_codes())}}
)
class ReasonCodeFilter(django_filters.Filter):
    """Rows whose reason code is any of the given ones (`unspecified`: given none)."""

    field_class = ReasonCodesFormField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("field_name", "reason_code")
        kwargs.setdefault("lookup_expr", "in")
        super().__init__(*args, **kwargs)


class TimelineFilter(django_filters.FilterSet):
    since = AwareDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = AwareDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    sku = django_filters.CharFilter(field_name="sku")
    actor = django_filters.CharFilter(field_name="actor")
    reason_code = ReasonCodeFilter()

    class Meta:
        model = OrderLedgerEntry
        fields = []


class LedgerFilter(TimelineFilter):
    order = IdFilter(field_name="order_id")
    source = django_filters.ChoiceFilter(choices=Source.choices)
    event_type = django_filters.ChoiceFilter(choices=OrderEventType.choices)
