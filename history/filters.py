import django_filters

from config.api.filters import AwareDateTimeFilter, IdFilter
from history.models import OrderEventType, OrderLedgerEntry, Source


class TimelineFilter(django_filters.FilterSet):
    since = AwareDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = AwareDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    sku = django_filters.CharFilter(field_name="sku")
    actor = django_filters.CharFilter(field_name="actor")

    class Meta:
        model = OrderLedgerEntry
        fields = []


class LedgerFilter(TimelineFilter):
    order = IdFilter(field_name="order_id")
    source = django_filters.ChoiceFilter(choices=Source.choices)
    event_type = django_filters.ChoiceFilter(choices=OrderEventType.choices)
