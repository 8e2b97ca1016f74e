from django.core.validators import RegexValidator
from django.db import models

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
sku_validator = RegexValidator(
    SKU_PATTERN, "A sku is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."
)


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True, validators=[sku_validator])
    name = models.CharField(max_length=200)
    track_inventory = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.sku} · {self.name}"
