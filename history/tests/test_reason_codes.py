"""Reason codes: the one rule (history.audit.reason_code_check), its settings, and how the
ledger, the events, the history filters and the CSV exports carry the code."""

import csv
import io

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.errors import DomainValidationError, ErrorCode
from history.audit import Audit, reason_code_check, reason_codes
from history.models import OrderLedgerEntry, OutboxEvent, Source
from orders.models import Order
from tests.problems import assert_problem

ORDERS = "/api/v1/orders/"
ADJUSTMENTS = "/api/v1/adjustments/"


def audit_for(source: Source, reason_code: str = "") -> Audit:
    return Audit(actor="tester", source=source, reason_code=reason_code)


def csv_dicts(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def coded_orders(api, make_order, product, other_product):
    """Order 1: created by the system (`system`), SKU-1 set over the API with
    `customer_request`, SKU-2 adjusted over the API with no code (`unspecified`)."""
    order = make_order(lines={product.sku: 10, other_product.sku: 5})
    body = {"lines": [{"sku": "SKU-1", "quantity": 12}], "reason_code": "customer_request"}
    assert api.patch(f"{ORDERS}{order.pk}/", body, format="json").status_code == 200
    body = {"sku": "SKU-2", "delta": -1, "reason": "r"}
    assert api.post(f"{ORDERS}{order.pk}/adjust/", body, format="json").status_code == 200
    return order


# --- The rule --------------------------------------------------------------------------------


def test_an_unknown_code_is_refused_through_every_door():
    for source in Source:
        # when
        with pytest.raises(DomainValidationError) as refused:
            reason_code_check(audit_for(source, "because"))

        # then
        assert refused.value.field == "reason_code"
        assert refused.value.code == ErrorCode.UNKNOWN_REASON_CODE
        assert "'because'" in refused.value.detail


def test_by_default_the_admin_needs_a_code_and_the_api_and_system_do_not():
    # when
    with pytest.raises(DomainValidationError) as refused:
        reason_code_check(audit_for(Source.ADMIN))
    reason_code_check(audit_for(Source.API))
    reason_code_check(audit_for(Source.SYSTEM))
    reason_code_check(audit_for(Source.ADMIN, "correction"))

    # then
    assert refused.value.code == ErrorCode.REASON_CODE_REQUIRED
    assert refused.value.field == "reason_code"


def test_stock_adjustments_and_counts_need_a_code_through_any_door():
    for source in Source:
        for movement in ("adjust", "count"):
            # when
            with pytest.raises(DomainValidationError) as refused:
                reason_code_check(audit_for(source), movement=movement)

            # then
            assert refused.value.code == ErrorCode.REASON_CODE_REQUIRED
            assert f"A stock {movement} needs a reason code" in refused.value.detail
    reason_code_check(audit_for(Source.API), movement="receive")


def test_the_doors_and_movements_that_need_a_code_are_settings(settings):
    # given
    settings.REASON_CODE_REQUIRED_DOORS = ["api"]
    settings.REASON_CODE_REQUIRED_MOVEMENTS = ["receive"]

    # when / then
    reason_code_check(audit_for(Source.ADMIN))
    reason_code_check(audit_for(Source.SYSTEM), movement="adjust")
    with pytest.raises(DomainValidationError):
        reason_code_check(audit_for(Source.API))
    with pytest.raises(DomainValidationError):
        reason_code_check(audit_for(Source.SYSTEM), movement="receive")


def test_extra_codes_extend_the_vocabulary(settings):
    # given
    settings.REASON_CODES_EXTRA = ["recall"]

    # when
    reason_code_check(audit_for(Source.API, "recall"))

    # then
    assert reason_codes()[-2:] == ("system", "recall")


@pytest.mark.parametrize("bad", ["unspecified", "Bad-Code", "x" * 33, ""])
def test_a_malformed_extra_code_is_a_configuration_error(settings, bad):
    # given
    settings.REASON_CODES_EXTRA = [bad]

    # when / then
    with pytest.raises(ImproperlyConfigured):
        reason_codes()


# --- Through the API -------------------------------------------------------------------------


def test_an_unknown_code_is_400_and_writes_nothing(api, product):
    # given
    body = {"lines": [{"sku": product.sku, "quantity": 3}], "reason_code": "because"}

    # when
    response = api.post(ORDERS, body, format="json")

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert [error["attr"] for error in problem["errors"]] == ["reason_code"]
    assert not Order.objects.exists()
    assert not OrderLedgerEntry.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_an_api_door_that_requires_a_code_refuses_a_change_without_one(api, settings, product):
    # given
    settings.REASON_CODE_REQUIRED_DOORS = ["admin", "api"]

    # when
    response = api.post(ORDERS, {"lines": [{"sku": product.sku, "quantity": 3}]}, format="json")

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert [(e["attr"], e["code"]) for e in problem["errors"]] == [
        ("reason_code", "reason_code_required")
    ]
    assert not Order.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_an_extra_code_from_the_settings_is_accepted_by_the_api(api, settings, product):
    # given
    settings.REASON_CODES_EXTRA = ["recall"]
    body = {"lines": [{"sku": product.sku, "quantity": 3}], "reason_code": "recall"}

    # when
    response = api.post(ORDERS, body, format="json")

    # then
    assert response.status_code == 201, response.content
    assert OrderLedgerEntry.objects.get().reason_code == "recall"


def test_the_code_is_in_the_ledger_rows_and_the_event_payloads(coded_orders):
    # when
    rows = OrderLedgerEntry.objects.filter(order=coded_orders).order_by("version", "sku")
    events = OutboxEvent.objects.filter(aggregate_id=str(coded_orders.pk)).order_by("id")

    # then
    assert [(r.version, r.sku, r.reason_code) for r in rows] == [
        (1, "SKU-1", "system"),
        (1, "SKU-2", "system"),
        (2, "SKU-1", "customer_request"),
        (3, "SKU-2", "unspecified"),
    ]
    assert [e.payload["reason_code"] for e in events] == [
        "system",
        "customer_request",
        "unspecified",
    ]


# --- The history filters and the CSV -----------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"reason_code": "customer_request,unspecified"},
        {"reason_code": ["customer_request", "unspecified"]},
    ],
    ids=["comma-separated", "repeated"],
)
def test_the_adjustments_feed_filters_by_reason_code(api, coded_orders, params):
    # when
    response = api.get(ADJUSTMENTS, params)

    # then
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["version"], r["reason_code"]) for r in results] == [
        (2, "customer_request"),
        (3, "unspecified"),
    ]


def test_the_order_history_filters_by_reason_code(api, coded_orders):
    # when
    response = api.get(f"{ORDERS}{coded_orders.pk}/history/", {"reason_code": "system"})

    # then
    assert response.status_code == 200
    assert {(r["version"], r["reason_code"]) for r in response.json()["results"]} == {(1, "system")}


@pytest.mark.parametrize(
    ("value", "code"),
    [("because", "invalid_choice"), ("", None), ("correction,", "blank"), ("a,b", None)],
    ids=["unknown", "empty", "trailing-comma", "two-unknown"],
)
def test_the_reason_code_filter_refuses_empty_and_unknown_values(api, coded_orders, value, code):
    for url in (ADJUSTMENTS, f"{ORDERS}{coded_orders.pk}/history/"):
        # when
        response = api.get(url, {"reason_code": value})

        # then
        problem = assert_problem(response, 400, "validation_error")
        errors = [e for e in problem["errors"] if e["attr"] == "reason_code"]
        assert errors
        if code:
            assert errors[0]["code"] == code


def test_every_order_csv_export_has_the_reason_code_column(api, coded_orders):
    # when
    feed = csv_dicts(api.get(ADJUSTMENTS, {"format": "csv", "reason_code": "customer_request"}))
    history = csv_dicts(api.get(f"{ORDERS}{coded_orders.pk}/history/", {"format": "csv"}))

    # then
    assert [(r["version"], r["reason_code"]) for r in feed] == [("2", "customer_request")]
    assert [r["reason_code"] for r in history] == [
        "system",
        "system",
        "customer_request",
        "unspecified",
    ]
