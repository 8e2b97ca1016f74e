"""Idempotency-Key on every write: replay for the same request, 422 for a different one, 409
while the first is still running, per user, and failures replay too."""

import threading

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection, transaction
from rest_framework.test import APIClient

from config.tokens import api_token_create
from history.idempotency import _lock_id
from history.models import IdempotencyRecord, OrderLedgerEntry, OutboxEvent
from inventory.models import Product
from orders import apis as order_apis
from orders import services
from orders.models import Customer, Order, OrderLine
from tests.problems import assert_problem

ORDERS = "/api/v1/orders/"
PROBLEM = "application/problem+json"


def counts() -> dict[str, int]:
    models = (Order, OrderLine, OrderLedgerEntry, OutboxEvent, IdempotencyRecord)
    return {model.__name__: model.objects.count() for model in models}


def send(client, method: str, url: str, body, key: str | None = None, **headers):
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return getattr(client, method)(url, body, format="json", **headers)


def _create(order):
    return "post", ORDERS, {"lines": [{"sku": "SKU-1", "quantity": 3}], "reason": "new"}


def _patch(order):
    body = {"lines": [{"sku": "SKU-1", "quantity": 120}], "reason": "more"}
    return "patch", f"{ORDERS}{order.pk}/", body


def _adjust(order):
    return "post", f"{ORDERS}{order.pk}/adjust/", {"sku": "SKU-1", "delta": -7, "reason": "less"}


def _cancel(order):
    return "post", f"{ORDERS}{order.pk}/cancel/", {"reason": "withdrawn"}


def _customer(order):
    return "post", "/api/v1/customers/", {"name": "ACME"}


def _product(order):
    return "post", "/api/v1/products/", {"sku": "NEW-1", "name": "New"}


ORDER_WRITES = [
    pytest.param(_create, id="create"),
    pytest.param(_patch, id="patch"),
    pytest.param(_adjust, id="adjust"),
    pytest.param(_cancel, id="cancel"),
]
ALL_WRITES = [
    *ORDER_WRITES,
    pytest.param(_customer, id="customer"),
    pytest.param(_product, id="product"),
]


@pytest.fixture
def order(make_order, product):
    return make_order(lines={product.sku: 100})


# --- replay ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ALL_WRITES)
def test_same_key_and_body_replays_the_first_response_without_writing(api, order, endpoint):
    # given
    method, url, body = endpoint(order)
    first = send(api, method, url, body, key="key-1")
    assert first.status_code in (200, 201), first.content
    after_first = counts() | {
        "Customer": Customer.objects.count(),
        "Product": Product.objects.count(),
    }

    # when
    second = send(api, method, url, body, key="key-1")

    # then
    assert second.status_code == first.status_code
    assert second.content == first.content
    assert second["Content-Type"] == first["Content-Type"]
    assert second.get("ETag") == first.get("ETag")
    assert second.get("Location") == first.get("Location")
    assert second["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert (
        counts()
        | {
            "Customer": Customer.objects.count(),
            "Product": Product.objects.count(),
        }
        == after_first
    )
    assert IdempotencyRecord.objects.get().key == "key-1"


@pytest.mark.django_db
def test_replayed_create_makes_one_order_one_ledger_set_one_outbox_row(api, product, other_product):
    # given
    body = {"lines": [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-2", "quantity": 2}]}

    # when
    responses = [send(api, "post", ORDERS, body, key="create-once") for _ in range(3)]

    # then
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert [r.get("Idempotent-Replayed") for r in responses] == [None, "true", "true"]
    assert responses[2]["Location"] == responses[0]["Location"]
    assert responses[2]["ETag"] == '"1"'
    assert Order.objects.count() == 1
    assert OrderLedgerEntry.objects.count() == 2
    assert OutboxEvent.objects.count() == 1
    assert set(OrderLedgerEntry.objects.values_list("idempotency_key", flat=True)) == {
        "create-once"
    }


@pytest.mark.django_db
def test_replay_returns_the_stored_response_even_after_the_order_moved_on(api, order):
    # given
    method, url, body = _patch(order)
    first = send(api, method, url, body, key="patch-1")
    send(api, "post", f"{ORDERS}{order.pk}/adjust/", {"sku": "SKU-1", "delta": 1, "reason": "r"})

    # when
    replay = send(api, method, url, body, key="patch-1")

    # then
    assert replay.content == first.content
    assert replay["ETag"] == '"2"'
    order.refresh_from_db()
    assert order.version == 3
    assert OrderLine.objects.get(order=order).quantity == 121


@pytest.mark.django_db
def test_key_order_and_whitespace_in_the_json_do_not_matter(api, order):
    # given
    url = f"{ORDERS}{order.pk}/adjust/"
    first = api.post(
        url,
        data=b'{"sku": "SKU-1", "delta": 5, "reason": "r"}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )

    # when
    second = api.post(
        url,
        data=b'{ "reason":"r",\n "delta":5, "sku":"SKU-1" }',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )

    # then
    assert first.status_code == 200
    assert second["Idempotent-Replayed"] == "true"
    assert second.content == first.content
    order.refresh_from_db()
    assert order.version == 2


# --- reuse with a different request ------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ORDER_WRITES)
def test_same_key_with_a_different_body_is_422_and_writes_nothing(api, order, endpoint):
    # given
    method, url, body = endpoint(order)
    assert send(api, method, url, body, key="k").status_code in (200, 201)
    before = counts()
    different = {**body, "reason": "something else"}

    # when
    response = send(api, method, url, different, key="k")

    # then
    assert_problem(response, 422, "idempotency_key_reused")
    assert not response.has_header("Idempotent-Replayed")
    assert counts() == before


@pytest.mark.django_db
def test_same_key_on_another_endpoint_is_422(api, order):
    # given
    send(api, *_adjust(order), key="shared")
    before = counts()

    # when
    response = send(api, *_cancel(order), key="shared")

    # then
    assert_problem(response, 422, "idempotency_key_reused")
    assert counts() == before
    order.refresh_from_db()
    assert order.status == "open"


@pytest.mark.django_db
def test_same_key_with_a_different_if_match_is_422(api, order):
    # given
    method, url, body = _adjust(order)
    send(api, method, url, body, key="k", HTTP_IF_MATCH='"1"')

    # when
    response = send(api, method, url, body, key="k", HTTP_IF_MATCH='"2"')

    # then
    assert_problem(response, 422, "idempotency_key_reused")
    order.refresh_from_db()
    assert order.version == 2


# --- per user ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_keys_are_per_user(api, api_client_for, product):
    # given
    other = api_client_for("order_staff")
    body = {"lines": [{"sku": "SKU-1", "quantity": 1}]}
    mine = send(api, "post", ORDERS, body, key="same-key")

    # when
    theirs = send(other, "post", ORDERS, body, key="same-key")

    # then
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert not theirs.has_header("Idempotent-Replayed")
    assert mine.json()["id"] != theirs.json()["id"]
    assert Order.objects.count() == 2
    assert set(IdempotencyRecord.objects.values_list("user_id", flat=True)) == {
        api.user.pk,
        other.user.pk,
    }


@pytest.mark.django_db
def test_another_users_key_with_a_different_body_is_not_a_conflict(api, api_client_for, product):
    # given
    other = api_client_for("integrator")
    send(api, "post", ORDERS, {"lines": [{"sku": "SKU-1", "quantity": 1}]}, key="k")

    # when
    response = send(other, "post", ORDERS, {"lines": [{"sku": "SKU-1", "quantity": 9}]}, key="k")

    # then
    assert response.status_code == 201
    assert response.json()["lines"] == [{"sku": "SKU-1", "quantity": 9}]


# --- failures replay ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_validation_failure_is_replayed(api, product):
    # given
    bad = {"lines": [{"sku": "SKU-1", "quantity": -1}]}
    first = send(api, "post", ORDERS, bad, key="bad-1")
    assert_problem(first, 400, "validation_error")

    # when
    second = send(api, "post", ORDERS, bad, key="bad-1")

    # then
    assert second.status_code == 400
    assert second.content == first.content
    assert second["Content-Type"] == PROBLEM
    assert second["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 0
    assert IdempotencyRecord.objects.get().status_code == 400


@pytest.mark.django_db
def test_a_key_bound_to_a_failure_cannot_be_reused_for_a_fixed_request(api, product):
    # given
    send(api, "post", ORDERS, {"lines": [{"sku": "SKU-1", "quantity": -1}]}, key="bad-1")

    # when
    response = send(api, "post", ORDERS, {"lines": [{"sku": "SKU-1", "quantity": 1}]}, key="bad-1")

    # then
    assert_problem(response, 422, "idempotency_key_reused")
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_a_malformed_json_failure_is_replayed(api):
    # given
    first = api.post(
        ORDERS, data=b"{nope", content_type="application/json", HTTP_IDEMPOTENCY_KEY="j"
    )

    # when
    second = api.post(
        ORDERS, data=b"{nope", content_type="application/json", HTTP_IDEMPOTENCY_KEY="j"
    )

    # then
    assert_problem(first, 400, "parse_error")
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_domain_conflict_is_replayed_even_if_it_would_now_succeed(api, order):
    # given
    url = f"{ORDERS}{order.pk}/adjust/"
    body = {"sku": "SKU-1", "delta": -150, "reason": "too many"}
    first = send(api, "post", url, body, key="c")
    assert_problem(first, 409, "quantity_out_of_range")
    send(
        api,
        "patch",
        f"{ORDERS}{order.pk}/",
        {"lines": [{"sku": "SKU-1", "quantity": 200}], "reason": "r"},
    )
    before = counts()

    # when
    second = send(api, "post", url, body, key="c")

    # then
    assert second.status_code == 409
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert counts() == before


@pytest.mark.django_db
def test_a_412_is_replayed_with_its_etag(api, order):
    # given
    method, url, body = _cancel(order)
    first = send(api, method, url, body, key="stale", HTTP_IF_MATCH='"9"')
    assert_problem(first, 412, "version_conflict")

    # when
    second = send(api, method, url, body, key="stale", HTTP_IF_MATCH='"9"')

    # then
    assert second.status_code == 412
    assert second["ETag"] == first["ETag"] == '"1"'
    assert second.content == first.content
    order.refresh_from_db()
    assert order.status == "open"


@pytest.mark.django_db
def test_a_server_error_stores_no_key_and_keeps_no_partial_write(api, product, monkeypatch):
    # given: the order is written, then building the response blows up
    def broken_response(order_id, **kwargs):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(order_apis, "order_response", broken_response)
    api.raise_request_exception = False
    body = {"lines": [{"sku": "SKU-1", "quantity": 1}]}
    failed = send(api, "post", ORDERS, body, key="retry-me")
    assert failed.status_code == 500
    monkeypatch.undo()

    # when
    retried = send(api, "post", ORDERS, body, key="retry-me")

    # then
    assert retried.status_code == 201
    assert not retried.has_header("Idempotent-Replayed")
    assert Order.objects.count() == 1
    assert OutboxEvent.objects.count() == 1


# --- what the key does not cover ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "key", ["", "x" * 256, "tab\tinside", "new\nline"], ids=["empty", "too-long", "tab", "newline"]
)
def test_invalid_keys_are_400_and_store_nothing(api, product, key):
    # when
    response = send(api, "post", ORDERS, {"lines": [{"sku": "SKU-1", "quantity": 1}]}, key=key)

    # then
    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["attr"] == "Idempotency-Key"
    assert counts() == dict.fromkeys(counts(), 0)


@pytest.mark.django_db
def test_a_255_character_key_is_fine(api, product):
    # when
    response = send(
        api, "post", ORDERS, {"lines": [{"sku": "SKU-1", "quantity": 1}]}, key="k" * 255
    )

    # then
    assert response.status_code == 201
    assert IdempotencyRecord.objects.get().key == "k" * 255


@pytest.mark.django_db
def test_reads_ignore_the_key(api, order):
    # when
    first = api.get(f"{ORDERS}{order.pk}/", HTTP_IDEMPOTENCY_KEY="read")
    second = api.get(f"{ORDERS}{order.pk}/", HTTP_IDEMPOTENCY_KEY="read")

    # then
    assert first.status_code == second.status_code == 200
    assert not second.has_header("Idempotent-Replayed")
    assert IdempotencyRecord.objects.count() == 0


def test_a_method_the_endpoint_does_not_serve_is_405_whatever_the_key(api, order):
    # given: the key is first used for the endpoint's own method
    url = f"{ORDERS}{order.pk}/cancel/"
    assert send(api, "post", url, {"reason": "r"}, key="k-405").status_code == 200

    # when: the same key on a method the endpoint does not serve, twice
    first = send(api, "patch", url, {"reason": "other"}, key="k-405")
    second = send(api, "patch", url, {"reason": "other"}, key="k-405-new")

    # then: 405, neither a 422 (key reused) nor a stored response
    assert_problem(first, 405, "method_not_allowed")
    assert_problem(second, 405, "method_not_allowed")
    assert IdempotencyRecord.objects.filter(key="k-405-new").count() == 0


@pytest.mark.django_db
def test_forbidden_and_unauthenticated_requests_store_no_key(api_client_for, product):
    # given
    body = {"lines": [{"sku": "SKU-1", "quantity": 1}]}

    # when
    forbidden = send(api_client_for("auditor"), "post", ORDERS, body, key="k")
    anonymous = send(APIClient(), "post", ORDERS, body, key="k")

    # then
    assert forbidden.status_code == 403
    assert anonymous.status_code == 401
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.django_db
def test_without_a_key_every_request_executes(api, product):
    # when
    for _ in range(2):
        send(api, "post", ORDERS, {"lines": [{"sku": "SKU-1", "quantity": 1}]})

    # then
    assert Order.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 0


# --- in flight (real threads, real PostgreSQL) -------------------------------------------


def _token_client(username: str, role: str = "integrator") -> APIClient:
    # Transactional tests flush the database, so do not rely on migration-made groups.
    group, _ = Group.objects.get_or_create(name=role)
    user = User.objects.create_user(username, password="pw-for-tests-1")
    user.groups.add(group)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='t').key}")
    client.user = user
    return client


@pytest.mark.django_db(transaction=True)
def test_a_second_request_while_the_first_is_in_flight_gets_409(monkeypatch):
    # given: the first request is parked inside order_create, inside its transaction
    client = _token_client("racer")
    Product.objects.create(sku="SKU-R", name="Racer", track_inventory=False)
    body = {"lines": [{"sku": "SKU-R", "quantity": 1}]}
    entered, release = threading.Event(), threading.Event()
    original = services.order_create
    calls = []

    def parked_order_create(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            entered.set()
            assert release.wait(10), "the test never released the first request"
        return original(**kwargs)

    monkeypatch.setattr(services, "order_create", parked_order_create)
    results = {}

    def first_request():
        try:
            results["first"] = send(client, "post", ORDERS, body, key="in-flight")
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    try:
        assert entered.wait(10), "the first request never reached the service"

        # when
        second = send(client, "post", ORDERS, body, key="in-flight")
    finally:
        release.set()
        thread.join(15)

    # then
    assert not thread.is_alive()
    assert_problem(second, 409, "idempotency_key_in_flight")
    assert results["first"].status_code == 201
    assert len(calls) == 1
    assert Order.objects.count() == 1
    third = send(client, "post", ORDERS, body, key="in-flight")
    assert third.status_code == 201
    assert third["Idempotent-Replayed"] == "true"
    assert third.content == results["first"].content
    assert Order.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_advisory_lock_held_elsewhere_means_in_flight_for_that_user_only():
    # given: another connection holds the key's lock inside an open transaction
    me = _token_client("me")
    someone_else = _token_client("someone-else")
    Product.objects.create(sku="SKU-L", name="Lock", track_inventory=False)
    body = {"lines": [{"sku": "SKU-L", "quantity": 1}]}
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_id(me.user.pk, "held")])
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)

        # when
        mine = send(me, "post", ORDERS, body, key="held")
        theirs = send(someone_else, "post", ORDERS, body, key="held")
    finally:
        release.set()
        holder.join(15)
    after_release = send(me, "post", ORDERS, body, key="held")

    # then
    assert_problem(mine, 409, "idempotency_key_in_flight")
    assert theirs.status_code == 201
    assert after_release.status_code == 201
    assert not after_release.has_header("Idempotent-Replayed")
    assert Order.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 2


def test_the_query_string_is_part_of_the_request_a_key_is_bound_to(api, make_order, product):
    # given: a key used for a request with one query string
    order = make_order(lines={product.sku: 1})
    body = {"items": [{"order": order.pk, "sku": product.sku, "delta": 1}], "reason": "q"}
    first = api.post(
        "/api/v1/adjustments/bulk/?atomic=true", body, format="json", HTTP_IDEMPOTENCY_KEY="qs-1"
    )

    # when: the same key and body with another query string
    second = api.post(
        "/api/v1/adjustments/bulk/?atomic=false", body, format="json", HTTP_IDEMPOTENCY_KEY="qs-1"
    )

    # then
    assert first.status_code == 200
    assert second.status_code == 422
