from django.contrib import admin
from django.http import HttpRequest

from inventory.models import Product
from inventory.services import product_create


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "track_inventory", "created_at")
    list_filter = ("track_inventory",)
    search_fields = ("sku", "name")

    def get_readonly_fields(self, request: HttpRequest, obj: Product | None = None) -> tuple:
        # Ledger rows keep the sku they were written with; renaming it would orphan them.
        return ("sku", "created_at") if obj else ("created_at",)

    def save_model(self, request: HttpRequest, obj: Product, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        product = product_create(sku=obj.sku, name=obj.name, track_inventory=obj.track_inventory)
        obj.pk = product.pk
        obj.created_at = product.created_at
        obj._state.adding = False
        obj._state.db = product._state.db
