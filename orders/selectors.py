from django.db.models import Prefetch, QuerySet

from config.api.formats import api_datetime
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


def order_representation(*, order_id: int) -> dict:
    """The order as the API shows it, read with one query (lines joined to their order and
    product; every order has at least one line). Same shape as orders.apis.OrderOutput."""
    lines = list(
        OrderLine.objects.filter(order_id=order_id)
        .select_related("order", "product")
        .only(
            "quantity",
            "product__sku",
            "order__customer_id",
            "order__reference",
            "order__status",
            "order__version",
            "order__created_at",
            "order__updated_at",
        )
        .order_by("id")
    )
    if not lines:
        raise NotFound(f"Order {order_id} does not exist.")
    order = lines[0].order
    return {
        "id": order_id,
        "customer": order.customer_id,
        "reference": order.reference,
        "status": order.status,
        "version": order.version,
        "created_at": api_datetime(order.created_at),
        "updated_at": api_datetime(order.updated_at),
        "lines": [{"sku": line.product.sku, "quantity": line.quantity} for line in lines],
    }


def order_exists(*, order_id: int) -> None:
    """Raise NotFound unless the order exists (one index probe, nothing loaded)."""
    if not Order.objects.filter(pk=order_id).exists():
        raise NotFound(f"Order {order_id} does not exist.")


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.order_by("id")
