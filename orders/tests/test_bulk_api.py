"""POST /api/v1/adjustments/bulk/: results per item, atomic refusals as problem details,
roles, Idempotency-Key, and bad input that must write nothing."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from history.models import IdempotencyRecord, OrderLedgerEntry, OutboxEvent
from orders.bulk_apis import AdjustmentsBulkApi, well_formed
from orders.models import Order, OrderLine
from tests.factories import ProductFactory
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db

BULK = "/api/v1/adjustments/bulk/"


def counts() -> dict:
    return {
        "ledger": OrderLedgerEntry.objects.count(),
        "outbox": OutboxEvent.objects.count(),
        "idempotency": IdempotencyRecord.objects.count(),
        "lines": list(OrderLine.objects.order_by("pk").values_list("pk", "quantity")),
        "orders": list(Order.objects.order_by("pk").values_list("pk", "version")),
    }


def post(client, body, *, atomic: str | None = None, **headers):
    path = BULK if atomic is None else f"{BULK}?atomic={atomic}"
    return client.post(path, body, format="json", **headers)


@pytest.fixture
def orders(make_order, product):
    """Two open orders with SKU-1: 10."""
    return [make_order(lines={product.sku: 10}).pk for _ in range(2)]


def test_bulk_applies_the_items_and_answers_with_a_result_for_each(api, orders, other_product):
    # given
    a, b = orders
    body = {
        "items": [
            {"order": a, "sku": "SKU-1", "delta": 5},
            {"order": b, "sku": "SKU-1", "quantity": 3, "expected_version": 1},
            {"order": a, "sku": "SKU-2", "quantity": 4, "expected_version": 2},
            {"order": b, "sku": "SKU-1", "delta": -4},
            {"order": a, "sku": "SKU-1", "delta": 0},
        ],
        "reason": "nightly sync",
    }

    # when
    response = post(api, body, HTTP_IDEMPOTENCY_KEY="sync-1")

    # then
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert data["applied"] == 4
    assert data["failed"] == 1
    assert data["results"][:3] == [
        {
            "index": 0,
            "order": a,
            "sku": "SKU-1",
            "status": "applied",
            "version": 2,
            "quantity": 15,
            "delta": 5,
        },
        {
            "index": 1,
            "order": b,
            "sku": "SKU-1",
            "status": "applied",
            "version": 2,
            "quantity": 3,
            "delta": -7,
        },
        {
            "index": 2,
            "order": a,
            "sku": "SKU-2",
            "status": "applied",
            "version": 3,
            "quantity": 4,
            "delta": 4,
        },
    ]
    assert data["results"][3] == {
        "index": 3,
        "order": b,
        "sku": "SKU-1",
        "status": "error",
        "version": None,
        "quantity": None,
        "delta": None,
        "error": {
            "type": "urn:ordertrack:problem:quantity_out_of_range",
            "code": "quantity_out_of_range",
            "status": 409,
            "title": "Quantity out of range",
            "detail": (
                "Adjusting SKU-1 by -4 would take it from 3 to -1; a quantity must stay "
                "between 0 and 100000000."
            ),
            "sku": "SKU-1",
            "quantity": 3,
        },
    }
    assert data["results"][4] == {
        "index": 4,
        "order": a,
        "sku": "SKU-1",
        "status": "unchanged",
        "version": 3,
        "quantity": 15,
        "delta": 0,
    }
    rows = list(
        OrderLedgerEntry.objects.filter(event_type="order.quantity_adjusted").values_list(
            "actor", "source", "reason", "idempotency_key"
        )
    )
    assert rows == [(api.user.username, "api", "nightly sync", "sync-1")] * 3
    assert api.get(f"/api/v1/orders/{a}/")["ETag"] == '"3"'


def test_atomic_refusal_is_a_problem_listing_the_failing_items_and_writes_nothing(api, orders):
    # given
    a, b = orders
    body = {
        "items": [
            {"order": a, "sku": "SKU-1", "delta": 5},
            {"order": b, "sku": "SKU-1", "delta": -11},
            {"order": a, "sku": "SKU-1", "delta": 1, "expected_version": 1},
        ]
    }
    before = counts()

    # when
    response = post(api, body, atomic="true")

    # then
    problem = assert_problem(response, 409, "batch_rejected")
    assert problem["title"] == "Batch refused"
    assert problem["detail"].startswith("2 of 3 items cannot be applied, so none was")
    assert [
        (e["index"], e["pointer"], e["attr"], e["code"], e["status"]) for e in problem["errors"]
    ] == [
        (1, "#/items/1", "items.1", "quantity_out_of_range", 409),
        (2, "#/items/2", "items.2", "version_conflict", 412),
    ]
    assert problem["errors"][1]["current_version"] == 2
    assert counts() == before


@pytest.mark.parametrize(
    ("bad", "status"),
    [({"expected_version": 9}, 412), ({"sku": "NOPE"}, 400), ({"order": 987654}, 400)],
)
def test_atomic_refusal_status_follows_the_kind_of_failure(api, orders, bad, status):
    # given
    item = {"order": orders[0], "sku": "SKU-1", "delta": 1, **bad}
    before = counts()

    # when
    response = post(api, {"items": [item]}, atomic="true")

    # then
    problem = assert_problem(response, status, "batch_rejected")
    assert [e["index"] for e in problem["errors"]] == [0]
    assert counts() == before


def test_atomic_false_is_the_default_and_atomic_true_applies_a_clean_batch(api, orders):
    # given
    a, b = orders
    body = {
        "items": [{"order": a, "sku": "SKU-1", "delta": 1}, {"order": b, "sku": "NOPE", "delta": 1}]
    }

    # when
    partial = post(api, body)
    clean = post(api, {"items": [{"order": b, "sku": "SKU-1", "delta": 1}]}, atomic="true")

    # then
    assert partial.status_code == 200, partial.content
    assert (partial.json()["applied"], partial.json()["failed"]) == (1, 1)
    assert partial.json()["results"][1]["error"]["code"] == "unknown_sku"
    assert clean.status_code == 200, clean.content
    assert clean.json()["results"][0]["version"] == 2


def test_a_thousand_items_in_one_request(api, make_order):
    # given: 100 orders with 10 products each
    for n in range(10):
        ProductFactory(sku=f"P-{n}")
    ids = [make_order(lines={f"P-{n}": 100 for n in range(10)}).pk for _ in range(100)]
    body = {
        "items": [
            {"order": pk, "sku": f"P-{n}", "delta": 1, "expected_version": 1 + n}
            for pk in ids
            for n in range(10)
        ]
    }

    # when
    started = time.perf_counter()
    response = post(api, body, atomic="true", HTTP_IDEMPOTENCY_KEY="big-1")
    elapsed = time.perf_counter() - started

    # then
    assert response.status_code == 200, response.content
    assert (response.json()["applied"], response.json()["failed"]) == (1000, 0)
    print(f"1000 items through the API in {elapsed * 1000:.0f} ms")
    assert OrderLedgerEntry.objects.filter(event_type="order.quantity_adjusted").count() == 1000
    assert set(Order.objects.values_list("version", flat=True)) == {11}


# --- who may call it, retries ------------------------------------------------------------


def test_auditors_are_403_and_anonymous_callers_401(api_client_for, orders):
    # given
    body = {"items": [{"order": orders[0], "sku": "SKU-1", "delta": 1}]}
    before = counts()

    # when
    auditor = post(api_client_for("auditor"), body)
    anonymous = post(APIClient(), body)

    # then
    assert_problem(auditor, 403, "permission_denied")
    assert_problem(anonymous, 401, "not_authenticated")
    assert counts() == before


def test_staff_may_call_it(api_client_for, orders):
    # when
    response = post(
        api_client_for("order_staff"),
        {"items": [{"order": orders[0], "sku": "SKU-1", "delta": 1}]},
    )

    # then
    assert response.status_code == 200, response.content


def test_the_same_idempotency_key_replays_the_response_and_writes_once(api, orders):
    # given
    body = {"items": [{"order": orders[0], "sku": "SKU-1", "delta": 2}]}
    first = post(api, body, HTTP_IDEMPOTENCY_KEY="batch-7")
    after_first = counts()

    # when
    again = post(api, body, HTTP_IDEMPOTENCY_KEY="batch-7")
    other_body = post(
        api,
        {"items": [{"order": orders[0], "sku": "SKU-1", "delta": 3}]},
        HTTP_IDEMPOTENCY_KEY="batch-7",
    )

    # then
    assert first.status_code == 200, first.content
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert_problem(other_body, 422, "idempotency_key_reused")
    assert counts() == after_first
    assert Order.objects.get(pk=orders[0]).version == 2


def test_an_atomic_refusal_is_replayed_too(api, orders):
    # given
    body = {"items": [{"order": orders[0], "sku": "NOPE", "delta": 1}]}
    first = post(api, body, atomic="true", HTTP_IDEMPOTENCY_KEY="k-1")

    # when
    again = post(api, body, atomic="true", HTTP_IDEMPOTENCY_KEY="k-1")

    # then
    assert_problem(first, 400, "batch_rejected")
    assert again.status_code == 400
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"


# --- bad input ----------------------------------------------------------------------------


def _item(**fields) -> dict:
    return {"order": 1, "sku": "SKU-1", "delta": 1} | fields


@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        ({"items": []}, "items", "empty"),
        ({"items": [_item()] * 1001}, "items", "max_length"),
        ({}, "items", "required"),
        ({"items": {"order": 1}}, "items", "not_a_list"),
        ({"items": [_item(order="1")]}, "items.0.order", "invalid"),
        ({"items": [_item(delta=1.0)]}, "items.0.delta", "invalid"),
        ({"items": [_item(delta=True)]}, "items.0.delta", "invalid"),
        ({"items": [_item(expected_version="2")]}, "items.0.expected_version", "invalid"),
        ({"items": [_item(), _item(quantity=5)]}, "items.1.quantity", "quantity_or_delta"),
        ({"items": [{"order": 1, "sku": "SKU-1"}]}, "items.0.quantity", "quantity_or_delta"),
        ({"items": [_item(qty=5)]}, "items.0.qty", "unknown_field"),
        ({"items": [_item()], "atomic": True}, "atomic", "unknown_field"),
        ({"items": [_item(delta=100_000_001)]}, "items.0.delta", "max_value"),
        (
            {"items": [{"order": 1, "sku": "SKU-1", "quantity": -1}]},
            "items.0.quantity",
            "min_value",
        ),
        ({"items": [_item(order=0)]}, "items.0.order", "min_value"),
        ({"items": [_item(order=2**63)]}, "items.0.order", "max_value"),
        ({"items": [_item(sku="S" * 65)]}, "items.0.sku", "max_length"),
        ({"items": [_item(expected_version=0)]}, "items.0.expected_version", "min_value"),
        ({"items": [_item()], "reason_code": "nope"}, "reason_code", "invalid_choice"),
        ({"items": [_item()], "reason_code": "unspecified"}, "reason_code", "invalid_choice"),
        ({"items": [_item()], "reason_code": 7}, "reason_code", "invalid_choice"),
    ],
)
def test_bad_input_is_a_400_problem_and_writes_nothing(api, orders, body, attr, code):
    # given
    before = counts()

    # when
    response = post(api, body)

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert [(e["attr"], e["code"]) for e in problem["errors"]][:1] == [(attr, code)]
    assert counts() == before


def test_atomic_must_be_true_or_false(api, orders):
    # when
    response = post(api, {"items": [_item(order=orders[0])]}, atomic="yes")

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"][0]["attr"] == "atomic"
    assert Order.objects.get(pk=orders[0]).version == 1


def test_each_applied_item_counts_as_one_recorded_adjustment(
    api, orders, django_capture_on_commit_callbacks
):
    # given
    from prometheus_client import REGISTRY

    def recorded() -> float:
        labels = {"source": "api", "kind": "order"}
        return REGISTRY.get_sample_value("ordertrack_adjustments_total", labels) or 0.0

    before = recorded()
    body = {
        "items": [
            {"order": orders[0], "sku": "SKU-1", "delta": 1},
            {"order": orders[1], "sku": "SKU-1", "delta": 1},
            {"order": orders[1], "sku": "SKU-1", "delta": 0},
            {"order": orders[1], "sku": "NOPE", "delta": 1},
        ]
    }

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api, body)

    # then
    assert response.status_code == 200, response.content
    assert recorded() - before == 2


# --- The quick check in front of the serializer ---------------------------------------------

_ints = st.sampled_from([0, 1, -1, 10**6, 10**6 + 1, -(10**6), -(10**6) - 1, 2**31, 2**63])
_odd_texts = st.sampled_from([" A-1", "A-1 ", "", "x" * 65, "é", "a\x00b", "y" * 501, "\t"])
_texts = st.one_of(st.from_regex(r"[A-Z0-9 -]{1,8}", fullmatch=True), _odd_texts)
_values = st.one_of(_ints, _odd_texts, st.none(), st.booleans(), st.just(1.0), st.just("12"))


def _mostly(draw, valid, odd=_values):
    return draw(valid) if draw(st.integers(0, 9)) else draw(odd)


@st.composite
def _items(draw) -> dict:
    """Mostly well-formed items, with a wrong value, a missing or an extra field now and then."""
    valid_text = st.from_regex(r"[A-Z0-9-]{1,8}", fullmatch=True)
    item = {
        "order": _mostly(draw, st.integers(1, 2**63 - 1)),
        "sku": _mostly(draw, valid_text, _texts),
    }
    item[draw(st.sampled_from(["quantity", "delta"]))] = _mostly(draw, st.integers(0, 10**6))
    if draw(st.booleans()):
        item["expected_version"] = _mostly(draw, st.integers(1, 2**31 - 1))
    if not draw(st.integers(0, 19)):
        item[draw(st.sampled_from(["qty", "quantity", "delta"]))] = draw(_values)
    if not draw(st.integers(0, 19)):
        item.pop(draw(st.sampled_from(sorted(item))))
    return item


@st.composite
def _bodies(draw):
    if not draw(st.integers(0, 19)):
        return draw(_values | st.lists(_items(), max_size=2))
    body = {"items": draw(st.lists(_items(), min_size=0, max_size=4))}
    if draw(st.booleans()):
        body["reason"] = _mostly(draw, st.from_regex(r"[a-z]{0,5}( [a-z]{1,5})?", fullmatch=True))
    if draw(st.booleans()):
        body["reason_code"] = _mostly(draw, st.sampled_from(["damaged", "unspecified", "nope"]))
    if not draw(st.integers(0, 19)):
        body["extra"] = draw(_values)
    return body


_body = _bodies()


@settings(max_examples=500, deadline=None)
@given(body=_body)
def test_what_the_quick_check_accepts_the_serializer_accepts_unchanged(body):
    # when
    quick = well_formed(body)
    serializer = AdjustmentsBulkApi.InputSerializer(data=body)

    # then: the quick check never accepts what the serializer refuses, nor changes a value
    if quick is not None:
        assert serializer.is_valid(), serializer.errors
        expected = {"items": serializer.validated_data["items"], "reason": ""}
        expected["reason"] = serializer.validated_data.get("reason", "")
        if "reason_code" in serializer.validated_data:
            expected["reason_code"] = serializer.validated_data["reason_code"]
        assert quick == expected


def test_the_quick_check_accepts_the_usual_batch():
    body = {
        "items": [
            {"order": 1, "sku": "A-1", "delta": -2},
            {"order": 2, "sku": "A-1", "quantity": 5, "expected_version": 3},
        ],
        "reason": "restock",
    }
    assert well_formed(body) == body
    assert well_formed({"items": body["items"]}) == {"items": body["items"], "reason": ""}


def test_the_batch_reason_code_is_recorded_on_every_item(api, orders):
    # given
    a, b = orders
    body = {
        "items": [
            {"order": a, "sku": "SKU-1", "delta": 1},
            {"order": b, "sku": "SKU-1", "delta": -1},
        ],
        "reason_code": "correction",
    }

    # when
    response = post(api, body, atomic="true")

    # then
    assert response.status_code == 200, response.content
    rows = OrderLedgerEntry.objects.filter(order_id__in=orders, version=2)
    assert sorted(r.reason_code for r in rows) == ["correction", "correction"]


def test_an_api_door_that_requires_a_code_refuses_the_whole_batch(api, orders, settings):
    # given
    settings.REASON_CODE_REQUIRED_DOORS = ["api"]
    before = counts()

    # when
    response = post(api, {"items": [{"order": orders[0], "sku": "SKU-1", "delta": 1}]})

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert [(e["attr"], e["code"]) for e in problem["errors"]] == [
        ("reason_code", "reason_code_required")
    ]
    assert counts() == before
