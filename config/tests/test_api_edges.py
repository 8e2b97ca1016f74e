"""The edges of the API an outside review found open: oversized bodies, ids past bigint,
unknown paths, empty and malformed query values. Every answer is a 4xx problem, and
nothing is written."""

import orjson
import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from history.models import IdempotencyRecord, OrderLedgerEntry, OutboxEvent
from orders.models import Order
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db


def _writes() -> tuple[int, int, int, int]:
    return (
        Order.objects.count(),
        OrderLedgerEntry.objects.count(),
        OutboxEvent.objects.count(),
        IdempotencyRecord.objects.count(),
    )


@pytest.mark.parametrize("idempotency_key", [None, "big-body-1"])
def test_a_body_over_the_limit_is_413_before_it_is_read(api, product, settings, idempotency_key):
    # given: 400,000 lines, as in the review (about 12 MB)
    settings.API_MAX_BODY_BYTES = 1024 * 1024
    lines = [{"sku": product.sku, "quantity": 1}] * 400_000
    body = orjson.dumps({"reference": "BIG", "lines": lines})
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    before = _writes()

    # when
    response = api.post("/api/v1/orders/", body, content_type="application/json", headers=headers)

    # then
    problem = assert_problem(response, 413, "request_too_large")
    assert f"{len(body):,} bytes" in problem["detail"]
    assert _writes() == before


def test_a_body_at_the_limit_is_read(api, product, settings):
    # given
    body = orjson.dumps({"reference": "OK", "lines": [{"sku": product.sku, "quantity": 1}]})
    settings.API_MAX_BODY_BYTES = len(body)

    # when
    response = api.post("/api/v1/orders/", body, content_type="application/json")

    # then
    assert response.status_code == 201


def test_too_many_lines_are_refused_before_any_line_is_validated(api, product):
    # given: 1,001 lines, every one of them invalid
    lines = [{"sku": "", "quantity": "x"}] * 1001

    # when
    response = api.post("/api/v1/orders/", {"lines": lines}, format="json")

    # then: one error for the length, none per line
    problem = assert_problem(response, 400, "validation_error")
    assert [(e["attr"], e["code"]) for e in problem["errors"]] == [("lines", "max_length")]


def test_too_many_bulk_items_are_refused_before_any_item_is_validated(api):
    # given
    items = [{"order": "x"}] * 1001

    # when
    response = api.post("/api/v1/adjustments/bulk/", {"items": items}, format="json")

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert [(e["attr"], e["code"]) for e in problem["errors"]] == [("items", "max_length")]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/orders/99999999999999999999/"),
        ("get", "/api/v1/orders/9223372036854775808/"),
        ("post", "/api/v1/orders/99999999999999999999/fulfil/"),
        ("get", "/api/v1/orders/0/"),
        ("get", "/api/v1/reservations/99999999999999999999/"),
        ("get", "/api/v1/orders/abc/"),
        ("get", "/api/v1/nothing-here/"),
        ("get", "/api/v1/orders"),
        ("post", "/api/v1/transfers/%0A1/cancel/"),
    ],
)
def test_unknown_api_paths_and_ids_past_bigint_are_404_problems(api, method, path):
    # when
    response = getattr(api, method)(path, {}, format="json")

    # then
    assert_problem(response, 404, "not_found")


def test_a_token_post_to_an_unknown_api_path_is_a_404_problem_not_a_csrf_page(api):
    # given: a token client whose browser-like stack runs the CSRF middleware's checks
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api.key}")

    # when
    response = client.post("/api/v1/tokens/9223372036854775808/revoke/", {}, format="json")

    # then
    assert_problem(response, 404, "not_found")


def test_unknown_api_paths_are_problems_with_debug_on_too(api):
    with override_settings(DEBUG=True):
        response = api.get("/api/v1/nothing-here/")
    assert_problem(response, 404, "not_found")


def test_the_largest_id_is_an_ordinary_miss(api):
    assert_problem(api.get("/api/v1/orders/9223372036854775807/"), 404, "not_found")


def test_a_method_the_endpoint_does_not_have_is_a_405_problem(api, make_order):
    order = make_order()
    assert_problem(api.delete(f"/api/v1/orders/{order.pk}/"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "query",
    [
        "customer=1e20",
        "customer=-3.4e38",
        "customer=99999999999999999999",
        "customer=0",
        "customer=",
        "status=",
        "updated_after=",
        "page_size=null",
        "page_size=0",
        "page_size=",
    ],
)
def test_malformed_or_empty_query_values_are_400(api, query):
    assert_problem(api.get(f"/api/v1/orders/?{query}"), 400, "validation_error")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/reservations/?order=-3.4e38",
        "/api/v1/adjustments/?order=1e20",
        "/api/v1/adjustments/?until=",
        "/api/v1/stock/history/?sku=",
    ],
)
def test_other_lists_refuse_them_too(api, path):
    assert_problem(api.get(path), 400, "validation_error")


def test_a_page_size_above_the_maximum_is_capped(api, make_order):
    make_order()
    response = api.get("/api/v1/orders/?page_size=100000")
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/adjustments/", "/api/v1/orders/"])
def test_an_empty_format_is_a_400_and_an_unknown_one_a_404(api, path):
    # when
    empty = api.get(path, {"format": ""})
    unknown = api.get(path, {"format": "xml"})

    # then
    body = assert_problem(empty, 400, "validation_error")
    assert body["errors"][0]["attr"] == "format"
    assert_problem(unknown, 404, "not_found")


@pytest.mark.parametrize(
    "path", ["/api/v1/adjustments/", "/api/v1/stock/history/", "/api/v1/orders/{id}/history/"]
)
def test_a_csv_export_refuses_a_malformed_page_size_too(api, make_order, path):
    # given
    order = make_order()

    # when
    response = api.get(path.format(id=order.pk), {"format": "csv", "page_size": "-2"})

    # then
    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["attr"] == "page_size"
