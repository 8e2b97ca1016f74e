from django.db import IntegrityError, transaction

from config.errors import DomainValidationError
from inventory.models import Product


def product_create(*, sku: str, name: str, track_inventory: bool = True) -> Product:
    try:
        with transaction.atomic():
            return Product.objects.create(sku=sku, name=name, track_inventory=track_inventory)
    except IntegrityError as exc:
        raise DomainValidationError(
            f"A product with sku {sku} already exists.", field="sku"
        ) from exc
