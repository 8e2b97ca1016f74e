"""Every API error is an RFC 9457 problem document (application/problem+json)."""

import pytest
from rest_framework.test import APIClient

from config.api.problems import PROBLEM_CONTENT_TYPE, _pointer
from config.errors import DomainValidationError, NotFound, VersionConflict
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"


def test_problem_content_type_constant():
    assert PROBLEM_CONTENT_TYPE == "application/problem+json"


def test_unknown_order_is_404_problem(api):
    # when
    response = api.get(f"{ORDERS}123456/")

    # then
    body = assert_problem(response, 404, "not_found")
    assert body["title"] == "Not found"
    assert body["detail"] == "Order 123456 does not exist."
    assert "errors" not in body


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("delete", f"{ORDERS}1/"),
        ("put", f"{ORDERS}1/"),
        ("delete", ORDERS),
        ("get", f"{ORDERS}1/adjust/"),
        ("patch", f"{ORDERS}1/cancel/"),
        ("post", "/api/v1/adjustments/"),
        ("post", "/api/v1/products/SKU-1/"),
    ],
)
def test_wrong_method_is_405_problem(api, method, url):
    # when
    response = getattr(api, method)(url, {}, format="json")

    # then
    body = assert_problem(response, 405, "method_not_allowed")
    assert body["title"] == "Method Not Allowed"
    assert method.upper() in body["detail"]
    assert response["Allow"]


def test_unauthenticated_is_401_problem():
    # when
    response = APIClient().get(ORDERS)

    # then
    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_bad_token_is_401_problem():
    # given
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    # when
    response = client.get(ORDERS)

    # then
    assert_problem(response, 401, "authentication_failed")


def test_forbidden_is_403_problem(api_client_for):
    # when
    response = api_client_for("auditor").post(ORDERS, {}, format="json")

    # then
    assert_problem(response, 403, "permission_denied")


def test_field_error_pointer_is_a_json_pointer_into_the_body(api, product):
    # when
    response = api.post(ORDERS, {"lines": [{"sku": "SKU-1", "quantity": -1}]}, format="json")

    # then
    body = assert_problem(response, 400, "validation_error")
    assert body["title"] == "Invalid input"
    assert body["errors"] == [
        {
            "code": "min_value",
            "detail": "Ensure this value is greater than or equal to 0.",
            "attr": "lines.0.quantity",
            "pointer": "#/lines/0/quantity",
        }
    ]
    assert body["detail"] == "lines.0.quantity: Ensure this value is greater than or equal to 0."


def test_every_field_error_is_listed(api, product):
    # when
    response = api.post(
        ORDERS,
        {
            "customer": "x",
            "lines": [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-1", "quantity": 1.5}],
        },
        format="json",
    )

    # then
    body = assert_problem(response, 400, "validation_error")
    assert {error["pointer"] for error in body["errors"]} == {"#/customer", "#/lines/1/quantity"}
    assert body["detail"].endswith("(and 1 more error)")


def test_non_field_error_points_at_the_document_root(api):
    # when
    response = api.post(ORDERS, data=b"[]", content_type="application/json")

    # then
    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["attr"] == "non_field_errors"
    assert body["errors"][0]["pointer"] == "#/"
    assert body["detail"] == body["errors"][0]["detail"]


def test_malformed_json_is_a_parse_error_problem(api):
    # when
    response = api.post(ORDERS, data=b'{"lines": ', content_type="application/json")

    # then
    body = assert_problem(response, 400, "parse_error")
    assert "JSON" in body["detail"]


def test_unsupported_media_type_is_415_problem(api):
    # when
    response = api.post(ORDERS, data=b"<order/>", content_type="application/xml")

    # then
    assert_problem(response, 415, "unsupported_media_type")


def test_domain_conflict_is_409_problem_with_its_extra_members(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 1})

    # when
    response = api.post(
        f"{ORDERS}{order.pk}/adjust/", {"sku": "SKU-1", "delta": -2, "reason": "r"}, format="json"
    )

    # then
    body = assert_problem(response, 409, "quantity_out_of_range")
    assert body["title"] == "Quantity out of range"
    assert (body["sku"], body["quantity"]) == ("SKU-1", 1)


def test_version_conflict_is_412_with_current_version_and_etag(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 1})

    # when
    response = api.post(f"{ORDERS}{order.pk}/cancel/", {}, format="json", HTTP_IF_MATCH='"7"')

    # then
    body = assert_problem(response, 412, "version_conflict")
    assert body["title"] == "Precondition failed"
    assert (body["current_version"], body["expected_version"]) == (1, 7)
    assert response["ETag"] == '"1"'


def test_problem_for_csv_request_is_still_json(api):
    # when
    response = api.get("/api/v1/orders/999/history/", {"format": "csv"})

    # then
    assert_problem(response, 404, "not_found")


def test_problems_carry_the_correlation_id_header(api):
    # when
    response = api.get(f"{ORDERS}999/", HTTP_X_REQUEST_ID="trace-123")

    # then
    assert response["X-Request-ID"] == "trace-123"


@pytest.mark.parametrize(
    ("attr", "pointer"),
    [
        (None, "#/"),
        ("non_field_errors", "#/"),
        ("lines", "#/lines"),
        ("lines.0.quantity", "#/lines/0/quantity"),
        ("lines.12.sku", "#/lines/12/sku"),
    ],
)
def test_pointer_format(attr, pointer):
    assert _pointer(attr) == pointer


def test_domain_errors_carry_their_status_and_code():
    # then
    missing = NotFound("Order", 7)
    assert (missing.status, str(missing.code)) == (404, "not_found")
    assert missing.detail == "Order 7 does not exist."
    conflict = VersionConflict(expected=1, current=3)
    assert (conflict.status, conflict.extra) == (412, {"current_version": 3, "expected_version": 1})
    invalid = DomainValidationError("bad", field="lines")
    assert (invalid.status, invalid.field) == (400, "lines")
