"""The order timeline (/orders/{id}/history/) and the whole ledger (/adjustments/), as JSON
pages and as streamed CSV."""

import csv
import io
from datetime import timedelta

import pytest

from history.models import AccessLogEntry, OrderLedgerEntry
from tests.factories import ProductFactory
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db

ADJUSTMENTS = "/api/v1/adjustments/"
HISTORY_FIELDS = {
    "event_id",
    "order",
    "version",
    "event_type",
    "sku",
    "delta",
    "quantity_before",
    "quantity_after",
    "actor",
    "source",
    "reason",
    "reason_code",
    "occurred_at",
    "correlation_id",
    "hash",
    "prev_hash",
    "sealed",
    "seal_number",
    "delivery",
}
CSV_HEADER = [
    "id",
    "event_id",
    "order_id",
    "version",
    "event_type",
    "sku",
    "delta",
    "quantity_before",
    "quantity_after",
    "actor",
    "source",
    "reason",
    "reason_code",
    "occurred_at",
    "correlation_id",
    "idempotency_key",
    "prev_hash",
    "hash",
]


def history_url(order_id: int) -> str:
    return f"/api/v1/orders/{order_id}/history/"


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    assert header == CSV_HEADER
    return [dict(zip(header, row, strict=True)) for row in reader]


@pytest.fixture
def timeline(api, make_order, product, other_product):
    """v1: created by `tester` (system) with SKU-1 x 100, SKU-2 x 5;
    v2: SKU-1 -> 120 over the API; v3: SKU-2 -3 over the API with an idempotency key."""
    order = make_order(lines={product.sku: 100, other_product.sku: 5})
    response = api.patch(
        f"/api/v1/orders/{order.pk}/",
        {"lines": [{"sku": "SKU-1", "quantity": 120}], "reason": "customer called"},
        format="json",
        HTTP_X_REQUEST_ID="req-42",
    )
    assert response.status_code == 200
    response = api.post(
        f"/api/v1/orders/{order.pk}/adjust/",
        {"sku": "SKU-2", "delta": -3, "reason": "damaged"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="adj-1",
    )
    assert response.status_code == 200
    return order


def entries(order_id: int) -> list[OrderLedgerEntry]:
    return list(OrderLedgerEntry.objects.filter(order_id=order_id).order_by("version", "id"))


# --- order history -----------------------------------------------------------------------


def test_history_lists_every_entry_oldest_first_with_audit_fields(api, timeline):
    # when
    response = api.get(history_url(timeline.pk))

    # then
    assert response.status_code == 200
    results = response.json()["results"]
    assert all(set(row) == HISTORY_FIELDS for row in results)
    fields = (
        "version",
        "event_type",
        "sku",
        "delta",
        "quantity_before",
        "quantity_after",
        "actor",
        "source",
        "reason",
    )
    user = api.user.username
    assert [tuple(r[f] for f in fields) for r in results] == [
        (1, "order.created", "SKU-1", 100, 0, 100, "tester", "system", "test"),
        (1, "order.created", "SKU-2", 5, 0, 5, "tester", "system", "test"),
        (2, "order.quantity_adjusted", "SKU-1", 20, 100, 120, user, "api", "customer called"),
        (3, "order.quantity_adjusted", "SKU-2", -3, 5, 2, user, "api", "damaged"),
    ]
    rows = entries(timeline.pk)
    assert [r["event_id"] for r in results] == [str(row.event_id) for row in rows]
    assert results[0]["event_id"] == results[1]["event_id"]
    assert results[2]["correlation_id"] == "req-42"
    assert {r["order"] for r in results} == {timeline.pk}
    assert results[0]["occurred_at"] <= results[2]["occurred_at"] <= results[3]["occurred_at"]
    assert results[0]["occurred_at"].endswith("Z")


def test_history_of_an_order_only_has_its_own_entries(api, timeline, make_order, product):
    # given
    make_order(lines={product.sku: 1})

    # when
    response = api.get(history_url(timeline.pk))

    # then
    assert len(response.json()["results"]) == 4


def test_history_filters_by_sku(api, timeline):
    # when
    response = api.get(history_url(timeline.pk), {"sku": "SKU-2"})

    # then
    assert [(r["version"], r["sku"]) for r in response.json()["results"]] == [
        (1, "SKU-2"),
        (3, "SKU-2"),
    ]


def test_history_filters_by_actor(api, timeline):
    # when
    by_tester = api.get(history_url(timeline.pk), {"actor": "tester"})
    by_api_user = api.get(history_url(timeline.pk), {"actor": api.user.username})
    by_nobody = api.get(history_url(timeline.pk), {"actor": "nobody"})

    # then
    assert [r["version"] for r in by_tester.json()["results"]] == [1, 1]
    assert [r["version"] for r in by_api_user.json()["results"]] == [2, 3]
    assert by_nobody.json()["results"] == []


def test_history_filters_by_since_and_until(api, timeline):
    # given
    rows = entries(timeline.pk)
    t1, t2, t3 = rows[0].occurred_at, rows[2].occurred_at, rows[3].occurred_at
    assert t1 < t2 < t3

    # when
    since_t2 = api.get(history_url(timeline.pk), {"since": t2.isoformat()})
    until_t2 = api.get(history_url(timeline.pk), {"until": t2.isoformat()})
    window = api.get(
        history_url(timeline.pk),
        {"since": t2.isoformat(), "until": (t3 - timedelta(microseconds=1)).isoformat()},
    )

    # then
    assert [r["version"] for r in since_t2.json()["results"]] == [2, 3]
    assert [r["version"] for r in until_t2.json()["results"]] == [1, 1]
    assert [r["version"] for r in window.json()["results"]] == [2]


@pytest.mark.parametrize(
    ("param", "value"),
    [("since", "2026-01-01T00:00:00"), ("until", "soon"), ("since", "2026-01-01")],
)
def test_history_refuses_naive_or_malformed_times(api, timeline, param, value):
    # when
    response = api.get(history_url(timeline.pk), {param: value})

    # then
    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["attr"] == param
    assert body["errors"][0]["pointer"] == f"#/{param}"


def test_history_pages_through_every_entry_once_in_order(api, make_order):
    # given
    products = ProductFactory.create_batch(3)
    order = make_order(lines={p.sku: 1 for p in products})
    for n in range(2):
        api.patch(
            f"/api/v1/orders/{order.pk}/",
            {"lines": [{"sku": p.sku, "quantity": 10 + n} for p in products], "reason": "r"},
            format="json",
        )
    expected = [row.pk for row in entries(order.pk)]
    assert len(expected) == 9

    # when
    seen, url, params = [], history_url(order.pk), {"page_size": 2}
    versions = []
    while url:
        page = api.get(url, params).json()
        assert len(page["results"]) <= 2
        seen += [(r["version"], r["sku"], r["quantity_after"]) for r in page["results"]]
        versions += [r["version"] for r in page["results"]]
        url, params = page["next"], None

    # then
    rows = entries(order.pk)
    assert seen == [(r.version, r.sku, r.quantity_after) for r in rows]
    assert len(set(seen)) == 9
    assert versions == sorted(versions)


def test_history_csv_has_a_header_and_one_row_per_entry(api, timeline):
    # when
    response = api.get(history_url(timeline.pk), {"format": "csv"})

    # then
    assert response["Content-Disposition"] == (
        f'attachment; filename="order-{timeline.pk}-history.csv"'
    )
    rows = csv_rows(response)
    ledger = entries(timeline.pk)
    assert len(rows) == len(ledger) == 4
    for row, entry in zip(rows, ledger, strict=True):
        assert row["event_id"] == str(entry.event_id)
        assert row["order_id"] == str(timeline.pk)
        assert row["version"] == str(entry.version)
        assert row["sku"] == entry.sku
        assert row["delta"] == str(entry.delta)
        assert row["quantity_before"] == str(entry.quantity_before)
        assert row["quantity_after"] == str(entry.quantity_after)
        assert row["actor"] == entry.actor
        assert row["reason"] == entry.reason
        assert row["occurred_at"] == entry.occurred_at.isoformat()
    assert rows[3]["idempotency_key"] == "adj-1"
    assert rows[2]["correlation_id"] == "req-42"


def test_history_csv_honours_filters(api, timeline):
    # when
    response = api.get(history_url(timeline.pk), {"format": "csv", "sku": "SKU-1"})

    # then
    assert [(r["version"], r["sku"]) for r in csv_rows(response)] == [
        ("1", "SKU-1"),
        ("2", "SKU-1"),
    ]


def test_history_csv_quotes_awkward_reasons(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 1})
    reason = 'said "no", then\nyes'
    api.post(
        f"/api/v1/orders/{order.pk}/adjust/",
        {"sku": "SKU-1", "delta": 1, "reason": reason},
        format="json",
    )

    # when
    rows = csv_rows(api.get(history_url(order.pk), {"format": "csv"}))

    # then
    assert rows[-1]["reason"] == reason


def test_ledger_csv_neutralises_formulas_in_text_but_keeps_negative_deltas(
    api_client_for, make_order, product
):
    # given: an integrator whose name, reasons and idempotency key a spreadsheet would run
    api = api_client_for("integrator")
    api.user.username = "@mallory"
    api.user.save()
    order = make_order(lines={product.sku: 10})
    for delta, reason, key in [
        (-5, '=HYPERLINK("http://x","y")', "@SUM(1)"),
        (2, "@SUM(1)", "+1"),
        (-1, "-1 broken", "plain-key"),
    ]:
        response = api.post(
            f"/api/v1/orders/{order.pk}/adjust/",
            {"sku": product.sku, "delta": delta, "reason": reason},
            format="json",
            HTTP_IDEMPOTENCY_KEY=key,
        )
        assert response.status_code == 200, response.content

    # when: the order's ledger and the whole ledger, as CSV
    exports = [
        csv_rows(api.get(history_url(order.pk), {"format": "csv"})),
        csv_rows(api.get(ADJUSTMENTS, {"format": "csv", "order": order.pk})),
    ]

    # then: every text cell starting with = + - @ is prefixed with a quote; numbers are not
    for rows in exports:
        assert [
            (r["delta"], r["quantity_after"], r["actor"], r["reason"], r["idempotency_key"])
            for r in rows[1:]
        ] == [
            ("-5", "5", "'@mallory", '\'=HYPERLINK("http://x","y")', "'@SUM(1)"),
            ("2", "7", "'@mallory", "'@SUM(1)", "'+1"),
            ("-1", "6", "'@mallory", "'-1 broken", "plain-key"),
        ]
        assert rows[0]["actor"] == "tester"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=1", "a=1"),
        ("", ""),
        (-5, -5),
        (0, 0),
        (None, None),
    ],
)
def test_csv_cells_starting_like_a_formula_are_prefixed_and_numbers_are_not(value, cell):
    from config.api.csv import csv_cell

    assert csv_cell(value) == cell


def test_history_of_unknown_order_is_404_problem(api):
    # when
    as_json = api.get(history_url(99999))
    as_csv = api.get(history_url(99999), {"format": "csv"})

    # then
    assert_problem(as_json, 404, "not_found")
    assert_problem(as_csv, 404, "not_found")


def test_history_csv_with_a_bad_filter_is_a_json_problem(api, timeline):
    # when
    response = api.get(history_url(timeline.pk), {"format": "csv", "since": "2026-01-01T00:00"})

    # then
    assert_problem(response, 400, "validation_error")


# --- adjustments (whole ledger) ----------------------------------------------------------


@pytest.fixture
def two_orders(api, timeline, make_order, other_product):
    second = make_order(lines={other_product.sku: 7}, reference="REF-2")
    return timeline, second


def test_adjustments_lists_the_whole_ledger_oldest_first(api, two_orders):
    # given
    first, second = two_orders

    # when
    response = api.get(ADJUSTMENTS)

    # then
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["order"], r["version"], r["sku"]) for r in results] == [
        (first.pk, 1, "SKU-1"),
        (first.pk, 1, "SKU-2"),
        (first.pk, 2, "SKU-1"),
        (first.pk, 3, "SKU-2"),
        (second.pk, 1, "SKU-2"),
    ]
    assert all(set(row) == HISTORY_FIELDS for row in results)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"order": "first"}, [("first", 1), ("first", 1), ("first", 2), ("first", 3)]),
        ({"order": "second"}, [("second", 1)]),
        ({"sku": "SKU-2"}, [("first", 1), ("first", 3), ("second", 1)]),
        ({"actor": "tester"}, [("first", 1), ("first", 1), ("second", 1)]),
        ({"actor": "api-user"}, [("first", 2), ("first", 3)]),
        ({"source": "api"}, [("first", 2), ("first", 3)]),
        ({"source": "system"}, [("first", 1), ("first", 1), ("second", 1)]),
        ({"source": "admin"}, []),
        ({"event_type": "order.created"}, [("first", 1), ("first", 1), ("second", 1)]),
        ({"order": "first", "sku": "SKU-2"}, [("first", 1), ("first", 3)]),
    ],
)
def test_adjustments_filters(api, two_orders, params, expected):
    # given
    first, second = two_orders
    names = {"first": first.pk, "second": second.pk}
    query = {
        key: names.get(value, api.user.username if value == "api-user" else value)
        for key, value in params.items()
    }

    # when
    response = api.get(ADJUSTMENTS, query)

    # then
    assert response.status_code == 200, response.content
    by_pk = {pk: name for name, pk in names.items()}
    assert [(by_pk[r["order"]], r["version"]) for r in response.json()["results"]] == expected


def test_adjustments_filters_by_since_and_until(api, two_orders):
    # given
    first, second = two_orders
    rows = list(OrderLedgerEntry.objects.order_by("id"))
    t_v2 = rows[2].occurred_at
    t_second = rows[4].occurred_at

    # when
    since = api.get(ADJUSTMENTS, {"since": t_v2.isoformat()})
    until = api.get(ADJUSTMENTS, {"until": t_v2.isoformat()})
    window = api.get(ADJUSTMENTS, {"since": t_v2.isoformat(), "until": t_second.isoformat()})

    # then
    assert [(r["order"], r["version"]) for r in since.json()["results"]] == [
        (first.pk, 2),
        (first.pk, 3),
        (second.pk, 1),
    ]
    assert [(r["order"], r["version"]) for r in until.json()["results"]] == [
        (first.pk, 1),
        (first.pk, 1),
    ]
    assert [(r["order"], r["version"]) for r in window.json()["results"]] == [
        (first.pk, 2),
        (first.pk, 3),
    ]


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("source", "email"),
        ("event_type", "order.deleted"),
        ("order", "first"),
        ("since", "2026-01-01T00:00:00"),
        ("until", "2026-99-01T00:00:00Z"),
    ],
)
@pytest.mark.parametrize("fmt", [None, "csv"])
def test_adjustments_bad_filter_is_a_json_problem_even_for_csv(api, two_orders, param, value, fmt):
    # given
    query = {param: value, **({"format": fmt} if fmt else {})}

    # when
    response = api.get(ADJUSTMENTS, query)

    # then
    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["attr"] == param
    assert body["errors"][0]["code"]


def test_adjustments_csv_streams_every_matching_row_beyond_one_page(api, make_order):
    # given: more rows than the default JSON page of 100
    products = ProductFactory.create_batch(120)
    order = make_order(lines={p.sku: n + 1 for n, p in enumerate(products)})
    json_page = api.get(ADJUSTMENTS).json()
    assert len(json_page["results"]) == 100
    assert json_page["next"]

    # when
    response = api.get(ADJUSTMENTS, {"format": "csv"})

    # then
    assert response["Content-Disposition"] == 'attachment; filename="adjustments.csv"'
    rows = csv_rows(response)
    assert len(rows) == 120
    ledger = list(OrderLedgerEntry.objects.order_by("id"))
    assert [row["sku"] for row in rows] == [entry.sku for entry in ledger]
    assert [int(row["quantity_after"]) for row in rows] == list(range(1, 121))
    assert {row["order_id"] for row in rows} == {str(order.pk)}
    assert {row["event_type"] for row in rows} == {"order.created"}


def test_adjustments_csv_with_filters_has_exactly_the_matching_rows(api, two_orders):
    # given
    first, second = two_orders

    # when
    response = api.get(ADJUSTMENTS, {"format": "csv", "sku": "SKU-2", "source": "system"})

    # then
    rows = csv_rows(response)
    assert [(r["order_id"], r["version"], r["sku"], r["delta"], r["actor"]) for r in rows] == [
        (str(first.pk), "1", "SKU-2", "5", "tester"),
        (str(second.pk), "1", "SKU-2", "7", "tester"),
    ]
    assert {r["source"] for r in rows} == {"system"}


def test_adjustments_csv_of_nothing_is_just_the_header(api, db):
    # when
    rows = csv_rows(api.get(ADJUSTMENTS, {"format": "csv"}))

    # then
    assert rows == []


def test_adjustments_pagination_walks_every_row_once(api, two_orders):
    # given
    expected = list(OrderLedgerEntry.objects.order_by("id").values_list("event_id", "sku"))

    # when
    seen, url, params = [], ADJUSTMENTS, {"page_size": 2}
    while url:
        page = api.get(url, params).json()
        seen += [(r["event_id"], r["sku"]) for r in page["results"]]
        url, params = page["next"], None

    # then
    assert seen == [(str(event_id), sku) for event_id, sku in expected]


def test_history_rows_are_exactly_what_the_documented_serializer_gives(
    api, make_order, product, audit
):
    # given
    from history.apis import LedgerEntrySerializer
    from history.models import OrderLedgerEntry
    from history.selectors import event_deliveries, ledger_sealed
    from orders.services import order_adjust

    order = make_order(lines={product.sku: 5})
    order_adjust(order_id=order.pk, deltas={product.sku: -2}, audit=audit)

    # when
    results = api.get(f"/api/v1/orders/{order.pk}/history/").json()["results"]

    # then
    entries = ledger_sealed(OrderLedgerEntry.objects.filter(order=order).order_by("version", "id"))
    deliveries = event_deliveries(event_ids={entry.event_id for entry in entries})
    expected = LedgerEntrySerializer(entries, many=True, context={"deliveries": deliveries}).data
    assert results == [dict(row) for row in expected]


# --- the access log of exports (history/tests/test_access_log.py has the rest) -------------


def test_adjustments_csv_export_is_recorded_with_its_filters_and_rows(api, two_orders):
    # when: `format` and unknown parameters are not filters
    response = api.get(
        ADJUSTMENTS,
        {"format": "csv", "sku": "SKU-2", "source": "system", "colour": "red"},
        HTTP_X_REQUEST_ID="export-1",
    )
    body = b"".join(response.streaming_content)

    # then
    entry = AccessLogEntry.objects.get()
    assert (entry.actor, entry.action, entry.target) == (
        api.user.username,
        "export_adjustments",
        "adjustments",
    )
    assert entry.filters == {"sku": "SKU-2", "source": "system"}
    assert entry.rows == OrderLedgerEntry.objects.filter(sku="SKU-2", source="system").count()
    assert entry.rows == body.count(b"\n") - 1 == 2
    assert entry.correlation_id == "export-1"


def test_order_history_csv_export_is_recorded_with_its_filters_and_rows(api, timeline):
    # when
    response = api.get(history_url(timeline.pk), {"format": "csv", "sku": "SKU-1"})
    b"".join(response.streaming_content)

    # then
    entry = AccessLogEntry.objects.get()
    assert (entry.actor, entry.action, entry.target) == (
        api.user.username,
        "export_order_history",
        f"order {timeline.pk}",
    )
    assert (entry.filters, entry.rows) == ({"sku": "SKU-1"}, 2)
