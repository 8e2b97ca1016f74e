import pytest
from django.db import connection

from config.sql import fetch_all, one_of
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_one_of_selects_exactly_the_given_values(monkeypatch, vendor):
    # given
    products = [ProductFactory(sku=f"ONE-OF-{n}") for n in range(4)]
    wanted = [products[0].sku, products[2].sku, "NO-SUCH-SKU"]
    monkeypatch.setattr(connection, "vendor", vendor)

    # when: the array form (PostgreSQL) or one placeholder per value (elsewhere; plain SQL
    # that PostgreSQL runs too)
    condition, params = one_of("sku", wanted)
    rows = fetch_all(f"SELECT sku FROM inventory_product WHERE {condition} ORDER BY sku", params)

    # then
    assert [sku for (sku,) in rows] == [products[0].sku, products[2].sku]
    assert len(params) == (1 if vendor == "postgresql" else 3)
