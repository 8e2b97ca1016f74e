"""The orders and customers HTTP API: create, read, list/filter/paginate, set quantities,
adjust, cancel, If-Match, as_of, and bad input that must write nothing."""

from datetime import UTC, timedelta, timezone

import orjson
import pytest

from history.models import IdempotencyRecord, OrderLedgerEntry, OutboxEvent
from orders.models import Customer, Order, OrderLine
from tests.factories import CustomerFactory, ProductFactory
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"
CUSTOMERS = "/api/v1/customers/"


def detail_url(order_id: int) -> str:
    return f"{ORDERS}{order_id}/"


def adjust_url(order_id: int) -> str:
    return f"{ORDERS}{order_id}/adjust/"


def cancel_url(order_id: int) -> str:
    return f"{ORDERS}{order_id}/cancel/"


def counts() -> dict[str, int]:
    models = (Order, OrderLine, OrderLedgerEntry, OutboxEvent, IdempotencyRecord)
    return {model.__name__: model.objects.count() for model in models}


def lines_of(body: dict) -> dict[str, int]:
    return {line["sku"]: line["quantity"] for line in body["lines"]}


def assert_field_error(body: dict, attr: str, code: str | None = None) -> dict:
    assert body["code"] == "validation_error"
    matching = [error for error in body["errors"] if error["attr"] == attr]
    assert matching, body["errors"]
    error = matching[0]
    expected_pointer = "#/" if attr == "non_field_errors" else "#/" + attr.replace(".", "/")
    assert error["pointer"] == expected_pointer
    assert error["detail"]
    if code is not None:
        assert error["code"] == code
    return error


def create(api, lines: dict[str, int], **extra):
    body = {"lines": [{"sku": sku, "quantity": qty} for sku, qty in lines.items()], **extra}
    return api.post(ORDERS, body, format="json")


def ledger(order_id: int) -> list[OrderLedgerEntry]:
    return list(OrderLedgerEntry.objects.filter(order_id=order_id).order_by("version", "id"))


# --- create and read ---------------------------------------------------------------------


def test_create_returns_201_with_id_version_status_lines_etag_and_location(
    api, product, other_product, customer
):
    # given
    body = {
        "customer": customer.pk,
        "reference": "PO-77",
        "lines": [{"sku": "SKU-1", "quantity": 100}, {"sku": "SKU-2", "quantity": 5}],
        "reason": "phone order",
    }

    # when
    response = api.post(ORDERS, body, format="json")

    # then
    assert response.status_code == 201, response.content
    data = response.json()
    order = Order.objects.get()
    assert data["id"] == order.pk
    assert data["version"] == 1
    assert data["status"] == "open"
    assert data["customer"] == customer.pk
    assert data["reference"] == "PO-77"
    assert data["lines"] == [{"sku": "SKU-1", "quantity": 100}, {"sku": "SKU-2", "quantity": 5}]
    assert response["ETag"] == '"1"'
    assert response["Location"] == f"/api/v1/orders/{order.pk}/"
    assert response["Content-Type"] == "application/json"


def test_create_records_one_created_row_per_line_and_one_outbox_event(api, product, other_product):
    # when
    response = create(api, {"SKU-1": 100, "SKU-2": 5}, reason="phone order")

    # then
    order_id = response.json()["id"]
    rows = ledger(order_id)
    assert [(r.sku, r.version, r.event_type, r.delta) for r in rows] == [
        ("SKU-1", 1, "order.created", 100),
        ("SKU-2", 1, "order.created", 5),
    ]
    assert {(r.quantity_before, r.actor, r.source, r.reason) for r in rows} == {
        (0, api.user.username, "api", "phone order")
    }
    assert len({r.event_id for r in rows}) == 1
    outbox = OutboxEvent.objects.get(aggregate_id=str(order_id))
    assert outbox.event_id == rows[0].event_id
    assert outbox.aggregate_version == 1


def test_create_without_customer_or_reference_is_allowed(api, product):
    # when
    response = create(api, {"SKU-1": 0})

    # then
    assert response.status_code == 201, response.content
    assert response.json()["customer"] is None
    assert response.json()["reference"] == ""
    assert lines_of(response.json()) == {"SKU-1": 0}


def test_get_detail_returns_order_with_etag_of_its_version(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})

    # when
    response = api.get(detail_url(order.pk))

    # then
    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    data = response.json()
    assert (data["id"], data["version"], data["status"]) == (order.pk, 1, "open")
    assert lines_of(data) == {"SKU-1": 100}


def test_get_detail_etag_follows_the_version(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})
    api.post(adjust_url(order.pk), {"sku": "SKU-1", "delta": 1, "reason": "r"}, format="json")

    # when
    response = api.get(detail_url(order.pk))

    # then
    assert response["ETag"] == '"2"'
    assert response.json()["version"] == 2


def test_get_unknown_order_is_404_problem(api):
    # when
    response = api.get(detail_url(987654))

    # then
    body = assert_problem(response, 404, "not_found")
    assert "987654" in body["detail"]


# --- list, filters, pagination ---------------------------------------------------------------


def test_list_returns_newest_first_with_lines(api, make_order, product):
    # given
    first = make_order(lines={product.sku: 1})
    second = make_order(lines={product.sku: 2})

    # when
    response = api.get(ORDERS)

    # then
    assert response.status_code == 200
    data = response.json()
    assert [o["id"] for o in data["results"]] == [second.pk, first.pk]
    assert data["results"][0]["lines"] == [{"sku": "SKU-1", "quantity": 2}]
    assert data["next"] is None
    assert data["previous"] is None


def test_list_filters_by_customer(api, make_order, product):
    # given
    alice, bob = CustomerFactory(), CustomerFactory()
    alices = make_order(lines={product.sku: 1}, customer=alice)
    make_order(lines={product.sku: 1}, customer=bob)
    make_order(lines={product.sku: 1})

    # when
    response = api.get(ORDERS, {"customer": alice.pk})

    # then
    assert response.status_code == 200
    assert [o["id"] for o in response.json()["results"]] == [alices.pk]


def test_list_filters_by_status(api, make_order, product):
    # given
    open_order = make_order(lines={product.sku: 1})
    cancelled = make_order(lines={product.sku: 1})
    assert api.post(cancel_url(cancelled.pk), {}, format="json").status_code == 200

    # when
    cancelled_page = api.get(ORDERS, {"status": "cancelled"})
    open_page = api.get(ORDERS, {"status": "open"})

    # then
    assert [o["id"] for o in cancelled_page.json()["results"]] == [cancelled.pk]
    assert [o["id"] for o in open_page.json()["results"]] == [open_order.pk]


def test_list_filters_by_sku_without_duplicates(api, make_order, product, other_product):
    # given
    both = make_order(lines={product.sku: 1, other_product.sku: 2})
    only_second = make_order(lines={other_product.sku: 3})
    make_order(lines={product.sku: 4})

    # when
    response = api.get(ORDERS, {"sku": "SKU-2"})

    # then
    assert [o["id"] for o in response.json()["results"]] == [only_second.pk, both.pk]


def test_list_filters_by_updated_after_and_before(api, make_order, product):
    # given
    old = make_order(lines={product.sku: 1})
    new = make_order(lines={product.sku: 1})
    api.post(adjust_url(new.pk), {"sku": "SKU-1", "delta": 1, "reason": "r"}, format="json")
    new.refresh_from_db()
    old.refresh_from_db()
    assert old.updated_at < new.updated_at

    # when
    after = api.get(ORDERS, {"updated_after": new.updated_at.isoformat()})
    before = api.get(ORDERS, {"updated_before": new.updated_at.isoformat()})
    window = api.get(
        ORDERS,
        {
            "updated_after": old.updated_at.isoformat(),
            "updated_before": (old.updated_at + timedelta(microseconds=1)).isoformat(),
        },
    )

    # then
    assert [o["id"] for o in after.json()["results"]] == [new.pk]
    assert [o["id"] for o in before.json()["results"]] == [old.pk]
    assert [o["id"] for o in window.json()["results"]] == [old.pk]


def test_list_accepts_z_suffix_and_other_offsets(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 1})
    order.refresh_from_db()
    in_utc = order.updated_at.astimezone(UTC)
    shifted = in_utc.astimezone(timezone(timedelta(hours=2)))

    # when
    with_z = api.get(ORDERS, {"updated_after": in_utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    with_offset = api.get(ORDERS, {"updated_after": shifted.isoformat()})

    # then
    assert [o["id"] for o in with_z.json()["results"]] == [order.pk]
    assert [o["id"] for o in with_offset.json()["results"]] == [order.pk]


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("updated_after", "2026-01-31T12:00:00"),
        ("updated_before", "2026-01-31T12:00:00"),
        ("updated_after", "yesterday"),
        ("updated_before", "2026-13-45T00:00:00Z"),
        ("status", "shipped"),
        ("customer", "abc"),
    ],
)
def test_list_refuses_bad_filter_values_with_400(api, param, value):
    # when
    response = api.get(ORDERS, {param: value})

    # then
    body = assert_problem(response, 400, "validation_error")
    error = assert_field_error(body, param)
    assert error["code"]


def test_list_naive_time_error_explains_the_missing_timezone(api):
    # when
    response = api.get(ORDERS, {"updated_after": "2026-01-31T12:00:00"})

    # then
    body = assert_problem(response, 400)
    assert "timezone" in body["errors"][0]["detail"]


def test_list_cursor_pagination_walks_every_order_once(api, make_order, product):
    # given
    created = [make_order(lines={product.sku: n}).pk for n in range(5)]

    # when
    pages, url, params = [], ORDERS, {"page_size": 2}
    while url:
        response = api.get(url, params)
        assert response.status_code == 200
        page = response.json()
        pages.append([o["id"] for o in page["results"]])
        url, params = page["next"], None

    # then
    assert pages == [created[4:2:-1], created[2:0:-1], created[0:1]]
    seen = [order_id for page in pages for order_id in page]
    assert len(seen) == len(set(seen)) == 5


def test_list_previous_link_goes_back(api, make_order, product):
    # given
    created = [make_order(lines={product.sku: n}).pk for n in range(3)]
    first = api.get(ORDERS, {"page_size": 2}).json()
    second = api.get(first["next"]).json()

    # when
    back = api.get(second["previous"]).json()

    # then
    assert [o["id"] for o in second["results"]] == [created[0]]
    assert [o["id"] for o in back["results"]] == [created[2], created[1]]


# --- PATCH: absolute quantities ----------------------------------------------------------


def test_patch_sets_absolute_quantity_with_exactly_one_ledger_entry(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})

    # when
    response = api.patch(
        detail_url(order.pk),
        {"lines": [{"sku": "SKU-1", "quantity": 120}], "reason": "customer called"},
        format="json",
    )

    # then
    assert response.status_code == 200, response.content
    assert response["ETag"] == '"2"'
    assert response.json()["version"] == 2
    assert lines_of(response.json()) == {"SKU-1": 120}
    adjustments = [r for r in ledger(order.pk) if r.version == 2]
    assert len(adjustments) == 1
    entry = adjustments[0]
    assert (entry.delta, entry.quantity_before, entry.quantity_after) == (20, 100, 120)
    assert (entry.event_type, entry.actor, entry.source, entry.reason) == (
        "order.quantity_adjusted",
        api.user.username,
        "api",
        "customer called",
    )
    assert OutboxEvent.objects.filter(aggregate_id=str(order.pk)).count() == 2


def test_patch_only_records_lines_that_change(api, make_order, product, other_product):
    # given
    order = make_order(lines={product.sku: 100, other_product.sku: 7})

    # when
    response = api.patch(
        detail_url(order.pk),
        {
            "lines": [{"sku": "SKU-1", "quantity": 100}, {"sku": "SKU-2", "quantity": 3}],
            "reason": "r",
        },
        format="json",
    )

    # then
    assert response.status_code == 200
    assert lines_of(response.json()) == {"SKU-1": 100, "SKU-2": 3}
    v2 = [(r.sku, r.delta) for r in ledger(order.pk) if r.version == 2]
    assert v2 == [("SKU-2", -4)]


def test_patch_with_a_new_sku_adds_a_line(api, make_order, product, other_product):
    # given
    order = make_order(lines={product.sku: 100})

    # when
    response = api.patch(
        detail_url(order.pk),
        {"lines": [{"sku": "SKU-2", "quantity": 9}], "reason": "add gadget"},
        format="json",
    )

    # then
    assert response.status_code == 200, response.content
    assert lines_of(response.json()) == {"SKU-1": 100, "SKU-2": 9}
    assert response.json()["version"] == 2
    entry = OrderLedgerEntry.objects.get(order_id=order.pk, version=2)
    assert (entry.sku, entry.quantity_before, entry.quantity_after) == ("SKU-2", 0, 9)
    assert OrderLine.objects.filter(order_id=order.pk).count() == 2


def test_unchanged_patch_is_a_no_op(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})
    before = counts()

    # when
    response = api.patch(
        detail_url(order.pk),
        {"lines": [{"sku": "SKU-1", "quantity": 100}], "reason": "nothing to do"},
        format="json",
    )

    # then
    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    assert response.json()["version"] == 1
    assert counts() == before
    order.refresh_from_db()
    assert order.version == 1


# --- adjust ------------------------------------------------------------------------------


def test_adjust_applies_positive_and_negative_deltas(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 100})

    # when
    up = api.post(
        adjust_url(order.pk), {"sku": "SKU-1", "delta": 5, "reason": "more"}, format="json"
    )
    down = api.post(
        adjust_url(order.pk), {"sku": "SKU-1", "delta": -30, "reason": "less"}, format="json"
    )

    # then
    assert up.status_code == 200, up.content
    assert (lines_of(up.json()), up.json()["version"], up["ETag"]) == ({"SKU-1": 105}, 2, '"2"')
    assert down.status_code == 200, down.content
    assert (lines_of(down.json()), down.json()["version"]) == ({"SKU-1": 75}, 3)
    assert [(r.version, r.delta, r.quantity_after, r.reason) for r in ledger(order.pk)] == [
        (1, 100, 100, "test"),
        (2, 5, 105, "more"),
        (3, -30, 75, "less"),
    ]


def test_adjust_down_to_exactly_zero_is_allowed(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 10})

    # when
    response = api.post(
        adjust_url(order.pk), {"sku": "SKU-1", "delta": -10, "reason": "none"}, format="json"
    )

    # then
    assert response.status_code == 200
    assert lines_of(response.json()) == {"SKU-1": 0}


def test_adjust_below_zero_is_409_and_writes_nothing(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 10})
    before = counts()

    # when
    response = api.post(
        adjust_url(order.pk), {"sku": "SKU-1", "delta": -11, "reason": "too many"}, format="json"
    )

    # then
    body = assert_problem(response, 409, "quantity_out_of_range")
    assert body["sku"] == "SKU-1"
    assert body["quantity"] == 10
    assert counts() == before
    order.refresh_from_db()
    assert order.version == 1
    assert OrderLine.objects.get(order=order).quantity == 10


def test_adjust_a_sku_not_on_the_order_adds_a_line(api, make_order, product, other_product):
    # given
    order = make_order(lines={product.sku: 10})

    # when
    response = api.post(
        adjust_url(order.pk), {"sku": "SKU-2", "delta": 4, "reason": "add"}, format="json"
    )

    # then
    assert response.status_code == 200, response.content
    assert lines_of(response.json()) == {"SKU-1": 10, "SKU-2": 4}


def test_adjust_with_zero_delta_is_a_no_op(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 10})
    before = counts()

    # when
    response = api.post(
        adjust_url(order.pk), {"sku": "SKU-1", "delta": 0, "reason": "noop"}, format="json"
    )

    # then
    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert counts() == before


# --- cancel ------------------------------------------------------------------------------


def test_cancel_sets_status_and_records_cancellation(api, make_order, product, other_product):
    # given
    order = make_order(lines={product.sku: 10, other_product.sku: 3})

    # when
    response = api.post(cancel_url(order.pk), {"reason": "customer withdrew"}, format="json")

    # then
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["status"], data["version"], response["ETag"]) == ("cancelled", 2, '"2"')
    rows = [r for r in ledger(order.pk) if r.version == 2]
    assert {(r.sku, r.event_type, r.delta, r.reason) for r in rows} == {
        ("SKU-1", "order.cancelled", -10, "customer withdrew"),
        ("SKU-2", "order.cancelled", -3, "customer withdrew"),
    }


def test_cancel_without_a_body_is_allowed(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 10})

    # when
    response = api.post(cancel_url(order.pk))

    # then
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("patch", detail_url, {"lines": [{"sku": "SKU-1", "quantity": 1}], "reason": "r"}),
        ("post", adjust_url, {"sku": "SKU-1", "delta": 1, "reason": "r"}),
        ("post", cancel_url, {"reason": "again"}),
    ],
)
def test_cancelled_order_cannot_be_changed(api, make_order, product, method, url, body):
    # given
    order = make_order(lines={product.sku: 10})
    assert api.post(cancel_url(order.pk), {}, format="json").status_code == 200
    before = counts()

    # when
    response = getattr(api, method)(url(order.pk), body, format="json")

    # then
    assert_problem(response, 409, "order_not_editable")
    assert counts() == before


# --- If-Match ----------------------------------------------------------------------------

WRITES = [
    pytest.param(
        "patch", detail_url, {"lines": [{"sku": "SKU-1", "quantity": 5}], "reason": "r"}, id="patch"
    ),
    pytest.param("post", adjust_url, {"sku": "SKU-1", "delta": 1, "reason": "r"}, id="adjust"),
    pytest.param("post", cancel_url, {"reason": "r"}, id="cancel"),
]


@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_stale_if_match_is_412_with_current_version_and_writes_nothing(
    api, make_order, product, method, url, body
):
    # given
    order = make_order(lines={product.sku: 10})
    api.post(adjust_url(order.pk), {"sku": "SKU-1", "delta": 1, "reason": "r"}, format="json")
    before = counts()

    # when
    response = getattr(api, method)(url(order.pk), body, format="json", HTTP_IF_MATCH='"1"')

    # then
    body = assert_problem(response, 412, "version_conflict")
    assert body["current_version"] == 2
    assert body["expected_version"] == 1
    assert response["ETag"] == '"2"'
    assert counts() == before
    order.refresh_from_db()
    assert order.version == 2


@pytest.mark.parametrize("if_match", ['"1"', "1", "*", " * "])
@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_matching_or_wildcard_if_match_is_accepted(
    api, make_order, product, method, url, body, if_match
):
    # given
    order = make_order(lines={product.sku: 10})

    # when
    response = getattr(api, method)(url(order.pk), body, format="json", HTTP_IF_MATCH=if_match)

    # then
    assert response.status_code == 200, response.content
    assert response["ETag"] == '"2"'


@pytest.mark.parametrize("if_match", ["abc", '"1', '1"', '"x"', '"1", "2"', "", '"12345678901"'])
@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_malformed_if_match_is_400_and_writes_nothing(
    api, make_order, product, method, url, body, if_match
):
    # given
    order = make_order(lines={product.sku: 10})
    before = counts()

    # when
    response = getattr(api, method)(url(order.pk), body, format="json", HTTP_IF_MATCH=if_match)

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, "If-Match")
    assert counts() == before


def test_if_match_on_a_second_write_uses_the_new_etag(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 10})
    first = api.post(
        adjust_url(order.pk),
        {"sku": "SKU-1", "delta": 1, "reason": "r"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )

    # when
    second = api.post(
        adjust_url(order.pk),
        {"sku": "SKU-1", "delta": 1, "reason": "r"},
        format="json",
        HTTP_IF_MATCH=first["ETag"],
    )

    # then
    assert second.status_code == 200
    assert second["ETag"] == '"3"'


def test_if_match_on_unknown_order_is_404(api):
    # when
    response = api.patch(
        detail_url(424242),
        {"lines": [{"sku": "SKU-1", "quantity": 1}], "reason": "r"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )

    # then
    assert_problem(response, 404, "not_found")


# --- as_of -------------------------------------------------------------------------------


@pytest.fixture
def changed_order(api, product, other_product):
    """An order created at t0 with SKU-1 x 100, then at t1 set to 120 and given SKU-2 x 3."""
    order_id = create(api, {"SKU-1": 100}).json()["id"]
    response = api.patch(
        detail_url(order_id),
        {
            "lines": [{"sku": "SKU-1", "quantity": 120}, {"sku": "SKU-2", "quantity": 3}],
            "reason": "r",
        },
        format="json",
    )
    assert response.status_code == 200
    rows = ledger(order_id)
    t0 = rows[0].occurred_at
    t1 = rows[-1].occurred_at
    assert t0 < t1
    return order_id, t0, t1


def test_as_of_between_changes_returns_the_old_state(api, changed_order):
    # given
    order_id, t0, t1 = changed_order
    between = t0 + (t1 - t0) / 2
    assert t0 < between < t1

    # when
    response = api.get(detail_url(order_id), {"as_of": between.isoformat()})

    # then
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["id"] == order_id
    assert data["version"] == 1
    assert data["status"] == "open"
    assert lines_of(data) == {"SKU-1": 100}
    assert response["ETag"] == '"1"'


def test_as_of_exactly_at_a_change_includes_it(api, changed_order):
    # given
    order_id, t0, t1 = changed_order

    # when
    at_t0 = api.get(detail_url(order_id), {"as_of": t0.isoformat()})
    at_t1 = api.get(detail_url(order_id), {"as_of": t1.isoformat()})

    # then
    assert at_t0.json()["version"] == 1
    assert at_t1.json()["version"] == 2
    assert lines_of(at_t1.json()) == {"SKU-1": 120, "SKU-2": 3}
    assert at_t1["ETag"] == '"2"'


def test_as_of_in_another_offset_names_the_same_instant(api, changed_order):
    # given
    order_id, t0, _ = changed_order
    shifted = t0.astimezone(timezone(timedelta(hours=-5)))
    as_z = t0.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # when
    by_offset = api.get(detail_url(order_id), {"as_of": shifted.isoformat()})
    by_z = api.get(detail_url(order_id), {"as_of": as_z})

    # then
    assert by_offset.json()["version"] == by_z.json()["version"] == 1


def test_as_of_after_cancel_shows_cancelled(api, changed_order):
    # given
    order_id, *_ = changed_order
    api.post(cancel_url(order_id), {}, format="json")
    t2 = ledger(order_id)[-1].occurred_at

    # when
    response = api.get(detail_url(order_id), {"as_of": t2.isoformat()})

    # then
    assert response.json()["status"] == "cancelled"
    assert response.json()["version"] == 3
    assert lines_of(response.json()) == {"SKU-1": 0, "SKU-2": 0}


def test_as_of_before_creation_is_400(api, changed_order):
    # given
    order_id, t0, _ = changed_order

    # when
    response = api.get(
        detail_url(order_id), {"as_of": (t0 - timedelta(microseconds=1)).isoformat()}
    )

    # then
    body = assert_problem(response, 400, "validation_error")
    assert_field_error(body, "as_of")


@pytest.mark.parametrize(
    "value", ["2026-01-31T12:00:00", "last tuesday", "2026-02-30T00:00:00Z", ""]
)
def test_as_of_malformed_or_naive_is_400(api, changed_order, value):
    # given
    order_id, *_ = changed_order

    # when
    response = api.get(detail_url(order_id), {"as_of": value})

    # then
    body = assert_problem(response, 400, "validation_error")
    assert_field_error(body, "as_of")


def test_as_of_for_unknown_order_is_404(api):
    # when
    response = api.get(detail_url(31337), {"as_of": "2026-01-31T12:00:00Z"})

    # then
    assert_problem(response, 404, "not_found")


# --- bad input writes nothing ------------------------------------------------------------


def _line(quantity, sku="SKU-1"):
    return {"lines": [{"sku": sku, "quantity": quantity}]}


BAD_CREATE_BODIES = [
    pytest.param(_line(-1), "lines.0.quantity", "min_value", id="negative-quantity"),
    pytest.param(_line(1.5), "lines.0.quantity", "invalid", id="fractional-quantity"),
    pytest.param(_line(12.0), "lines.0.quantity", "invalid", id="float-integral-quantity"),
    pytest.param(_line("12"), "lines.0.quantity", "invalid", id="string-quantity"),
    pytest.param(_line(True), "lines.0.quantity", "invalid", id="boolean-quantity"),
    pytest.param(_line(None), "lines.0.quantity", "null", id="null-quantity"),
    pytest.param(_line(10**12), "lines.0.quantity", "max_value", id="huge-quantity"),
    pytest.param(_line(100_000_001), "lines.0.quantity", "max_value", id="just-over-max"),
    pytest.param(_line(5, sku="NOPE-1"), "lines", "unknown_sku", id="unknown-sku"),
    pytest.param({"lines": {"SKU-1": 5}}, "lines", "not_a_list", id="lines-dict"),
    pytest.param({"lines": "SKU-1"}, "lines", "not_a_list", id="lines-string"),
    pytest.param({"lines": None}, "lines", "null", id="lines-null"),
    pytest.param({}, "lines", "required", id="missing-lines"),
    pytest.param({"lines": []}, "lines", "empty", id="empty-lines"),
    pytest.param({"lines": [5]}, "lines.0.non_field_errors", "invalid", id="line-not-object"),
    pytest.param({"lines": [{"sku": "SKU-1"}]}, "lines.0.quantity", "required", id="line-no-qty"),
    pytest.param({"lines": [{"quantity": 1}]}, "lines.0.sku", "required", id="line-no-sku"),
    pytest.param(
        {"lines": [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-1", "quantity": 2}]},
        "lines",
        "duplicate_sku",
        id="duplicate-sku",
    ),
    pytest.param({**_line(1), "priority": "high"}, "priority", "unknown_field", id="extra-field"),
    pytest.param(
        {"lines": [{"sku": "SKU-1", "quantity": 1, "qty": 2}]},
        "lines.0.qty",
        "unknown_field",
        id="extra-line-field",
    ),
    pytest.param({**_line(1), "customer": 999999}, "customer", None, id="unknown-customer"),
    pytest.param({**_line(1), "customer": "1"}, "customer", "invalid", id="customer-string"),
    pytest.param({**_line(1), "reference": None}, "reference", "null", id="reference-null"),
    pytest.param({**_line(1), "reference": "x" * 101}, "reference", "max_length", id="long-ref"),
]


@pytest.mark.parametrize(("body", "attr", "code"), BAD_CREATE_BODIES)
def test_create_refuses_bad_input_and_writes_nothing(api, product, body, attr, code):
    # given
    before = counts()

    # when
    response = api.post(ORDERS, body, format="json")

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, attr, code)
    assert counts() == before


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"lines": [', id="truncated"),
        pytest.param(b"{'lines': []}", id="single-quotes"),
        pytest.param(b"not json at all", id="garbage"),
        pytest.param(b"", id="empty-body"),
        pytest.param(
            b'{"lines": [{"sku": "SKU-1", "quantity": 100000000000000000000000000000}]}',
            id="integer-beyond-64-bits",
        ),
    ],
)
def test_create_refuses_malformed_json_and_writes_nothing(api, product, raw):
    # given
    before = counts()

    # when
    response = api.post(ORDERS, data=raw, content_type="application/json")

    # then
    assert_problem(response, 400)
    assert counts() == before


@pytest.mark.parametrize(
    "raw", [b"[]", b'[{"sku": "SKU-1", "quantity": 1}]', b'"lines"', b"42", b"null"]
)
def test_create_refuses_a_non_object_json_body(api, product, raw):
    # given
    before = counts()

    # when
    response = api.post(ORDERS, data=raw, content_type="application/json")

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, "non_field_errors")
    assert counts() == before


BAD_PATCH_BODIES = [
    pytest.param({**_line(-5), "reason": "r"}, "lines.0.quantity", "min_value", id="negative"),
    pytest.param({**_line(1.5), "reason": "r"}, "lines.0.quantity", "invalid", id="fractional"),
    pytest.param({**_line("12"), "reason": "r"}, "lines.0.quantity", "invalid", id="string"),
    pytest.param({**_line(True), "reason": "r"}, "lines.0.quantity", "invalid", id="boolean"),
    pytest.param({**_line(10**12), "reason": "r"}, "lines.0.quantity", "max_value", id="huge"),
    pytest.param(
        {**_line(5, sku="NOPE-1"), "reason": "r"}, "lines", "unknown_sku", id="unknown-sku"
    ),
    pytest.param({"reason": "r"}, "lines", "required", id="missing-lines"),
    pytest.param({"lines": [], "reason": "r"}, "lines", "empty", id="empty-lines"),
    pytest.param({"lines": {"SKU-1": 5}, "reason": "r"}, "lines", "not_a_list", id="lines-dict"),
    pytest.param(
        {
            "lines": [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-1", "quantity": 2}],
            "reason": "r",
        },
        "lines",
        "duplicate_sku",
        id="duplicate-sku",
    ),
    pytest.param({**_line(5), "reason": "r", "version": 1}, "version", "unknown_field", id="extra"),
    pytest.param(
        {**_line(5), "reason_code": "nope"}, "reason_code", "invalid_choice", id="unknown-code"
    ),
    pytest.param(
        {**_line(5), "reason_code": "unspecified"},
        "reason_code",
        "invalid_choice",
        id="unspecified-code",
    ),
]


@pytest.mark.parametrize(("body", "attr", "code"), BAD_PATCH_BODIES)
def test_patch_refuses_bad_input_and_writes_nothing(api, make_order, product, body, attr, code):
    # given
    order = make_order(lines={product.sku: 100})
    before = counts()

    # when
    response = api.patch(detail_url(order.pk), body, format="json")

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, attr, code)
    assert counts() == before
    order.refresh_from_db()
    assert order.version == 1


BAD_ADJUST_BODIES = [
    pytest.param(
        {"sku": "SKU-1", "delta": 1.5, "reason": "r"}, "delta", "invalid", id="fractional"
    ),
    pytest.param({"sku": "SKU-1", "delta": "3", "reason": "r"}, "delta", "invalid", id="string"),
    pytest.param({"sku": "SKU-1", "delta": True, "reason": "r"}, "delta", "invalid", id="boolean"),
    pytest.param({"sku": "SKU-1", "delta": None, "reason": "r"}, "delta", "null", id="null"),
    pytest.param({"sku": "SKU-1", "delta": 10**12, "reason": "r"}, "delta", "max_value", id="huge"),
    pytest.param(
        {"sku": "SKU-1", "delta": -(10**12), "reason": "r"}, "delta", "min_value", id="tiny"
    ),
    pytest.param({"sku": "SKU-1", "reason": "r"}, "delta", "required", id="missing-delta"),
    pytest.param({"delta": 1, "reason": "r"}, "sku", "required", id="missing-sku"),
    pytest.param({"sku": "SKU-1", "delta": 1}, "reason", "required", id="missing-reason"),
    pytest.param(
        {"sku": "NOPE-1", "delta": 1, "reason": "r"}, "lines", "unknown_sku", id="unknown-sku"
    ),
    pytest.param(
        {"sku": "SKU-1", "delta": 1, "reason": "r", "quantity": 3},
        "quantity",
        "unknown_field",
        id="extra",
    ),
]


@pytest.mark.parametrize(("body", "attr", "code"), BAD_ADJUST_BODIES)
def test_adjust_refuses_bad_input_and_writes_nothing(api, make_order, product, body, attr, code):
    # given
    order = make_order(lines={product.sku: 100})
    before = counts()

    # when
    response = api.post(adjust_url(order.pk), body, format="json")

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, attr, code)
    assert counts() == before


@pytest.mark.parametrize(
    ("method", "url"),
    [("patch", detail_url), ("post", adjust_url), ("post", cancel_url)],
)
@pytest.mark.parametrize("raw", [b"{oops", b"[1, 2]"])
def test_order_writes_refuse_malformed_or_non_object_json(
    api, make_order, product, method, url, raw
):
    # given
    order = make_order(lines={product.sku: 100})
    before = counts()

    # when
    response = getattr(api, method)(url(order.pk), data=raw, content_type="application/json")

    # then
    assert_problem(response, 400)
    assert counts() == before


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("get", detail_url, None),
        ("patch", detail_url, {"lines": [{"sku": "SKU-1", "quantity": 1}], "reason": "r"}),
        ("post", adjust_url, {"sku": "SKU-1", "delta": 1, "reason": "r"}),
        ("post", cancel_url, {"reason": "r"}),
    ],
)
def test_unknown_order_is_404_and_writes_nothing(api, product, method, url, body):
    # given
    before = counts()

    # when
    response = getattr(api, method)(url(777777), body, format="json")

    # then
    assert_problem(response, 404, "not_found")
    assert counts() == before


def test_field_errors_are_all_reported_with_pointers(api, product):
    # when
    response = api.post(
        ORDERS,
        {"lines": [{"sku": "SKU-1", "quantity": -1}, {"sku": "SKU-1", "quantity": "x"}]},
        format="json",
    )

    # then
    problem = assert_problem(response, 400, "validation_error")
    pointers = {error["pointer"] for error in problem["errors"]}
    assert pointers == {"#/lines/0/quantity", "#/lines/1/quantity"}
    assert "more error" in problem["detail"]


def test_problem_body_is_valid_json_with_a_stable_shape(api):
    # when
    response = api.post(ORDERS, {"lines": []}, format="json")

    # then
    body = orjson.loads(response.content)
    assert body["type"] == "urn:ordertrack:problem:validation_error"
    assert body["title"] == "Invalid input"
    assert body["detail"].startswith("lines:")
    assert set(body["errors"][0]) == {"code", "detail", "attr", "pointer"}


# --- customers ---------------------------------------------------------------------------


def test_create_customer_returns_201(api):
    # when
    response = api.post(CUSTOMERS, {"name": "ACME", "email": "buy@acme.test"}, format="json")

    # then
    assert response.status_code == 201, response.content
    data = response.json()
    customer = Customer.objects.get()
    assert data["id"] == customer.pk
    assert (data["name"], data["email"]) == ("ACME", "buy@acme.test")
    assert data["created_at"]


@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        ({}, "name", "required"),
        ({"name": ""}, "name", "blank"),
        ({"name": "x" * 201}, "name", "max_length"),
        ({"name": "ACME", "email": "not-an-email"}, "email", "invalid"),
        ({"name": "ACME", "phone": "123"}, "phone", "unknown_field"),
    ],
)
def test_create_customer_refuses_bad_input(api, body, attr, code):
    # when
    response = api.post(CUSTOMERS, body, format="json")

    # then
    problem = assert_problem(response, 400, "validation_error")
    assert_field_error(problem, attr, code)
    assert Customer.objects.count() == 0


def test_list_and_retrieve_customers(api):
    # given
    first, second = CustomerFactory(), CustomerFactory()

    # when
    listing = api.get(CUSTOMERS)
    one = api.get(f"{CUSTOMERS}{second.pk}/")

    # then
    assert listing.status_code == 200
    assert {c["id"] for c in listing.json()["results"]} == {first.pk, second.pk}
    assert one.status_code == 200
    assert one.json()["name"] == second.name


def test_unknown_customer_is_404_problem(api):
    # when
    response = api.get(f"{CUSTOMERS}99999/")

    # then
    assert_problem(response, 404, "not_found")


def test_orders_reference_customers_created_through_the_api(api, product):
    # given
    customer_id = api.post(CUSTOMERS, {"name": "ACME"}, format="json").json()["id"]

    # when
    response = create(api, {"SKU-1": 1}, customer=customer_id)

    # then
    assert response.status_code == 201
    assert response.json()["customer"] == customer_id
    assert (
        api.get(ORDERS, {"customer": customer_id}).json()["results"][0]["customer"] == customer_id
    )


def test_many_lines_are_created_in_one_request(api):
    # given
    products = ProductFactory.create_batch(30)

    # when
    response = create(api, {p.sku: i for i, p in enumerate(products)})

    # then
    assert response.status_code == 201
    assert len(response.json()["lines"]) == 30
    assert OrderLedgerEntry.objects.count() == 30
    assert OutboxEvent.objects.count() == 1


# --- Query counts of the hot endpoints (make bench drives these) -------------------------


def _queries_of(django_assert_num_queries, count, request):
    with django_assert_num_queries(count) as captured:
        response = request()
    return response, [query["sql"] for query in captured.captured_queries]


def test_order_read_costs_one_query_on_a_cache_miss_and_none_on_a_hit(
    api, make_order, product, django_assert_num_queries
):
    # given: the token is cached by an earlier request; the order is not cached yet
    warm, order = make_order(lines={product.sku: 1}), make_order(lines={product.sku: 2})
    api.get(f"/api/v1/orders/{warm.pk}/")
    path = f"/api/v1/orders/{order.pk}/"

    # when / then
    miss, _ = _queries_of(django_assert_num_queries, 1, lambda: api.get(path))
    hit, _ = _queries_of(django_assert_num_queries, 0, lambda: api.get(path))
    assert (miss["X-Cache"], hit["X-Cache"]) == ("miss", "hit")
    assert orjson.loads(hit.content) == orjson.loads(miss.content)


@pytest.mark.parametrize("kind", ["patch", "adjust"])
def test_a_single_adjustment_costs_four_statements(
    api, make_order, product, django_assert_num_queries, kind
):
    # given
    order = make_order(lines={product.sku: 5})
    api.get(f"/api/v1/orders/{order.pk}/")
    if kind == "patch":
        body = {"lines": [{"sku": product.sku, "quantity": 9}], "reason": "count"}
        request = lambda: api.patch(f"/api/v1/orders/{order.pk}/", body, format="json")  # noqa: E731
    else:
        body = {"sku": product.sku, "delta": 4, "reason": "count"}
        request = lambda: api.post(f"/api/v1/orders/{order.pk}/adjust/", body, format="json")  # noqa: E731

    # when: lock the order, read its lines, write state + ledger + outbox in one statement,
    # read the representation (plus the savepoint pair the test transaction adds)
    response, sql = _queries_of(django_assert_num_queries, 6, request)

    # then
    assert response.status_code == 200
    assert response.json()["lines"] == [{"sku": product.sku, "quantity": 9}]
    assert "FOR UPDATE" in sql[1]
    assert sum(1 for s in sql if "INSERT INTO history_outboxevent" in s) == 1
    assert OrderLedgerEntry.objects.filter(order=order, version=2).count() == 1


def test_first_history_page_costs_three_queries(
    api, make_order, product, django_assert_num_queries
):
    # given
    order = make_order(lines={product.sku: 5})
    api.get(f"/api/v1/orders/{order.pk}/")

    # when: the order exists (an index probe), one page of the ledger, its outbox events
    response, _ = _queries_of(
        django_assert_num_queries, 3, lambda: api.get(f"/api/v1/orders/{order.pk}/history/")
    )

    # then
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


# --- Reason codes ---------------------------------------------------------------------------


def test_an_integrator_needs_no_reason_nor_code_and_unspecified_is_recorded(api, product):
    # given
    body = {"lines": [{"sku": product.sku, "quantity": 100}]}
    created = api.post(ORDERS, body, format="json")
    order_id = created.json()["id"]

    # when
    changed = api.patch(
        detail_url(order_id), {"lines": [{"sku": product.sku, "quantity": 120}]}, format="json"
    )

    # then
    assert (created.status_code, changed.status_code) == (201, 200)
    rows = OrderLedgerEntry.objects.filter(order_id=order_id).order_by("version")
    assert [(r.version, r.reason, r.reason_code) for r in rows] == [
        (1, "", "unspecified"),
        (2, "", "unspecified"),
    ]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("patch", "", {"lines": [{"sku": "SKU-1", "quantity": 5}]}),
        ("post", "adjust/", {"sku": "SKU-1", "delta": 1, "reason": "r"}),
        ("post", "cancel/", {}),
        ("post", "fulfil/", {}),
    ],
    ids=["patch", "adjust", "cancel", "fulfil"],
)
def test_every_order_write_records_its_code_and_refuses_an_unknown_one(
    api, make_order, product, method, path, body
):
    # given
    order = make_order(lines={product.sku: 100})
    url = f"{detail_url(order.pk)}{path}"
    before = counts()

    # when
    refused = getattr(api, method)(url, {**body, "reason_code": "nope"}, format="json")
    unchanged = counts()
    applied = getattr(api, method)(url, {**body, "reason_code": "correction"}, format="json")

    # then
    problem = assert_problem(refused, 400, "validation_error")
    assert [e["attr"] for e in problem["errors"]] == ["reason_code"]
    assert unchanged == before
    assert applied.status_code == 200, applied.content
    latest = OrderLedgerEntry.objects.filter(order=order).order_by("-version").first()
    assert (latest.version, latest.reason_code) == (2, "correction")
