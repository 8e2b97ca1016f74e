"""The products API: create, list, ?sku= filter and lookup by sku."""

import pytest

from inventory.models import Product
from tests.factories import ProductFactory
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/v1/products/"


def test_create_product_returns_201(api):
    # when
    response = api.post(PRODUCTS, {"sku": "BOLT-M8.x_40", "name": "Bolt"}, format="json")

    # then
    assert response.status_code == 201, response.content
    data = response.json()
    product = Product.objects.get()
    assert data["id"] == product.pk
    assert (data["sku"], data["name"], data["track_inventory"]) == ("BOLT-M8.x_40", "Bolt", True)
    assert data["created_at"]


def test_create_product_without_inventory_tracking(api):
    # when
    response = api.post(
        PRODUCTS, {"sku": "SERVICE-1", "name": "Setup", "track_inventory": False}, format="json"
    )

    # then
    assert response.status_code == 201
    assert Product.objects.get(sku="SERVICE-1").track_inventory is False


def test_duplicate_sku_is_400_and_keeps_the_original(api, product):
    # when
    response = api.post(PRODUCTS, {"sku": "SKU-1", "name": "Impostor"}, format="json")

    # then
    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["attr"] == "sku"
    assert body["errors"][0]["pointer"] == "#/sku"
    assert "already exists" in body["errors"][0]["detail"]
    assert Product.objects.get().name == "Widget"


@pytest.mark.parametrize(
    "sku",
    ["-leading-dash", ".dot", "has space", "semi;colon", "slash/y", "", "x" * 65, "ümlaut"],
)
def test_invalid_sku_pattern_is_400(api, sku):
    # when
    response = api.post(PRODUCTS, {"sku": sku, "name": "Thing"}, format="json")

    # then
    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["attr"] == "sku"
    assert Product.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({"name": "No sku"}, "sku"),
        ({"sku": "OK-1"}, "name"),
        ({"sku": "OK-1", "name": ""}, "name"),
        ({"sku": None, "name": "Null"}, "sku"),
        ({"sku": ["OK-1"], "name": "List"}, "sku"),
        ({"sku": "OK-1", "name": "N", "track_inventory": "perhaps"}, "track_inventory"),
        ({"sku": "OK-1", "name": "N", "price": 3}, "price"),
    ],
)
def test_create_product_refuses_bad_input(api, body, attr):
    # when
    response = api.post(PRODUCTS, body, format="json")

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert attr in {error["attr"] for error in problem["errors"]}
    assert Product.objects.count() == 0


def test_lookup_by_sku(api, product, other_product):
    # when
    response = api.get(f"{PRODUCTS}SKU-2/")

    # then
    assert response.status_code == 200
    assert response.json()["id"] == other_product.pk
    assert response.json()["name"] == "Gadget"


def test_lookup_sku_with_dots_and_underscores(api):
    # given
    ProductFactory(sku="A.b_c-1")

    # when
    response = api.get(f"{PRODUCTS}A.b_c-1/")

    # then
    assert response.status_code == 200
    assert response.json()["sku"] == "A.b_c-1"


def test_lookup_unknown_sku_is_404_problem(api, product):
    # when
    response = api.get(f"{PRODUCTS}NOPE-1/")

    # then
    body = assert_problem(response, 404, "not_found")
    assert "NOPE-1" in body["detail"]


def test_lookup_is_case_sensitive(api, product):
    # when
    response = api.get(f"{PRODUCTS}sku-1/")

    # then
    assert_problem(response, 404, "not_found")


def test_list_and_filter_by_sku(api, product, other_product):
    # when
    everything = api.get(PRODUCTS)
    one = api.get(PRODUCTS, {"sku": "SKU-2"})
    none = api.get(PRODUCTS, {"sku": "NOPE-1"})

    # then
    assert everything.status_code == 200
    assert [p["sku"] for p in everything.json()["results"]] == ["SKU-2", "SKU-1"]
    assert [p["sku"] for p in one.json()["results"]] == ["SKU-2"]
    assert none.json()["results"] == []


def test_list_paginates_with_a_cursor(api):
    # given
    ProductFactory.create_batch(5)

    # when
    seen, url, params = [], PRODUCTS, {"page_size": 2}
    while url:
        page = api.get(url, params).json()
        seen += [p["sku"] for p in page["results"]]
        url, params = page["next"], None

    # then
    assert len(seen) == len(set(seen)) == 5


def test_created_product_can_be_ordered(api):
    # given: a product whose stock is not tracked, so no stock needs to be received first
    api.post(PRODUCTS, {"sku": "NEW-1", "name": "New", "track_inventory": False}, format="json")

    # when
    response = api.post(
        "/api/v1/orders/", {"lines": [{"sku": "NEW-1", "quantity": 2}]}, format="json"
    )

    # then
    assert response.status_code == 201
    assert response.json()["lines"] == [{"sku": "NEW-1", "quantity": 2}]
