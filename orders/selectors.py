from django.db.models import Prefetch, QuerySet

from config.errors import NotFound
from orders.models import Customer, Order, OrderLine


def order_list() -> QuerySet[Order]:
    lines = OrderLine.objects.select_related("product").order_by("id")
    return Order.objects.prefetch_related(Prefetch("lines", queryset=lines))


def order_get(*, order_id: int) -> Order:
    order = order_list().filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"Order {order_id} does not exist.")
    return order


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.order_by("id")
