from django.db.models import QuerySet

from config.errors import NotFound
from inventory.models import Product


def product_list() -> QuerySet[Product]:
    return Product.objects.order_by("id")


def product_get(*, sku: str) -> Product:
    product = Product.objects.filter(sku=sku).first()
    if product is None:
        raise NotFound(f"Product {sku} does not exist.")
    return product
