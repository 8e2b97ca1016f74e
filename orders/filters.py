import django_filters

from config.api.filters import AwareDateTimeFilter, IdFilter
from orders.models import Order, OrderStatus


class OrderFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer_id")
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices)
    sku = django_filters.CharFilter(method="filter_sku")
    updated_after = AwareDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = AwareDateTimeFilter(field_name="updated_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields = []

    def filter_sku(self, queryset, name, value):
        return queryset.filter(lines__product__sku=value).distinct()
