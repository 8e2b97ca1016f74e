from django.db.models import Prefetch, QuerySet

from config.api.formats import api_datetime
from config.errors import NotFound
from config.sql import fetch_all
from inventory.models import Product
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
    # Plain SQL: every cache miss and every write response comes here, and the ORM takes
    # longer to build this query than PostgreSQL takes to run it.
    rows = fetch_all(
        "SELECT o.customer_id, o.reference, o.status, o.version, o.created_at, "
        f"o.updated_at, p.sku, l.quantity FROM {Order._meta.db_table} AS o "
        f"JOIN {OrderLine._meta.db_table} AS l ON l.order_id = o.id "
        f"JOIN {Product._meta.db_table} AS p ON p.id = l.product_id "
        "WHERE o.id = %s ORDER BY l.id",
        [order_id],
    )
    if not rows:
        raise NotFound(f"Order {order_id} does not exist.")
    customer_id, reference, status, version, created_at, updated_at = rows[0][:6]
    return {
        "id": order_id,
        "customer": customer_id,
        "reference": reference,
        "status": status,
        "version": version,
        "created_at": api_datetime(created_at),
        "updated_at": api_datetime(updated_at),
        "lines": [{"sku": sku, "quantity": quantity} for *_, sku, quantity in rows],
    }


def order_exists(*, order_id: int) -> None:
    """Raise NotFound unless the order exists (one index probe, nothing loaded; plain SQL
    for the reason order_representation gives)."""
    if not fetch_all(f"SELECT 1 FROM {Order._meta.db_table} WHERE id = %s", [order_id]):
        raise NotFound(f"Order {order_id} does not exist.")


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.order_by("id")
