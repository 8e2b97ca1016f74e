"""Who looked: the access log of exports and proof requests (history.services.
access_log_record), kept append-only, shown read-only to staff and auditors in the admin.
Each export's own entry is tested beside it (history/tests/test_apis.py,
inventory/tests/test_query_apis.py)."""

import pytest
from django.core.signals import request_finished
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIRequestFactory, force_authenticate

from history.models import AccessAction, AccessLogEntry
from history.services import access_log_record
from inventory.query_apis import StockHistoryApi
from inventory.services import location_create, stock_receive
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

ADJUSTMENTS = "/api/v1/adjustments/"
STOCK_HISTORY = "/api/v1/stock/history/"


def record(**changes) -> AccessLogEntry:
    entry = {
        "actor": "auditor-1",
        "action": AccessAction.EXPORT_ORDER_HISTORY,
        "target": "order 12",
        "filters": {"sku": "SKU-1"},
        "rows": 3,
        "correlation_id": "req-1",
    }
    return access_log_record(**{**entry, **changes})


# --- the service ---------------------------------------------------------------------------


def test_record_writes_one_entry_with_the_time_it_was_recorded(db):
    # when
    entry = record()

    # then
    stored = AccessLogEntry.objects.get()
    assert stored == entry
    assert (stored.actor, stored.action, stored.target) == (
        "auditor-1",
        "export_order_history",
        "order 12",
    )
    assert (stored.filters, stored.rows, stored.correlation_id) == ({"sku": "SKU-1"}, 3, "req-1")
    assert stored.occurred_at is not None


def test_record_refuses_to_join_the_callers_transaction_whose_rollback_would_lose_it(db):
    # when / then: an entry is never written where a rollback could take it away
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        record()
    assert not AccessLogEntry.objects.exists()


def test_a_proof_request_has_no_row_count(db):
    # when
    entry = record(action=AccessAction.PROOF_STOCK, target="stock SKU-1@MAIN", rows=None)

    # then
    assert AccessLogEntry.objects.get(pk=entry.pk).rows is None


# --- append-only -----------------------------------------------------------------------------

ACCESS_LOG_CHANGES = [
    "UPDATE history_accesslogentry SET rows = 0",
    "UPDATE history_accesslogentry SET actor = 'someone else'",
    "DELETE FROM history_accesslogentry",
    "TRUNCATE history_accesslogentry",
    "UPDATE history_ledgerseal SET tree_size = tree_size + 1",
    "DELETE FROM history_ledgerseal",
]


@pytest.mark.parametrize("statement", ACCESS_LOG_CHANGES)
def test_the_runtime_role_may_not_change_the_access_log_or_the_seals(db, statement):
    # given
    record()

    # when / then: refused by privilege (history.services.APPEND_ONLY_TABLES), before the
    # triggers would refuse it too
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert AccessLogEntry.objects.get().rows == 3


def test_the_orm_cannot_edit_or_delete_an_access_log_entry_either(db):
    # given
    entry = record()

    # when / then
    entry.rows = 0
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        entry.save()
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        AccessLogEntry.objects.all().delete()
    assert AccessLogEntry.objects.get().rows == 3


# --- what the exports record ---------------------------------------------------------------


@pytest.fixture
def ledgers(make_order, product, audit):
    """Order ledger rows and stock ledger rows to export."""
    order = make_order(lines={product.sku: 5})
    location_create(code="MAIN", name="Main warehouse")
    ProductFactory(sku="TRK-1", track_inventory=True)
    stock_receive(sku="TRK-1", location="MAIN", quantity=10, audit=audit)
    stock_receive(sku="TRK-1", location="MAIN", quantity=5, audit=audit)
    return order


def export_urls(order) -> list[str]:
    return [ADJUSTMENTS, f"/api/v1/orders/{order.pk}/history/", STOCK_HISTORY]


def test_a_bad_filter_refuses_the_export_and_records_nothing(api, ledgers):
    for url in export_urls(ledgers):
        # when
        response = api.get(url, {"format": "csv", "since": "2026-01-01T00:00"})

        # then
        assert response.status_code == 400, url
    assert not AccessLogEntry.objects.exists()


def test_a_json_page_is_not_an_export_and_records_nothing(api, ledgers):
    for url in export_urls(ledgers):
        # when
        response = api.get(url)

        # then
        assert response.status_code == 200, url
    assert not AccessLogEntry.objects.exists()


def test_an_export_the_client_leaves_early_records_the_rows_handed_over(api, ledgers):
    # given: the header and the first row read (the view called as a server would, without
    # the test client, which closes the response itself)
    request = APIRequestFactory().get(STOCK_HISTORY, {"format": "csv", "sku": "TRK-1"})
    force_authenticate(request, user=api.user)
    response = StockHistoryApi.as_view()(request)
    chunks = iter(response.streaming_content)
    next(chunks), next(chunks)

    # when: the server closes the response, as it does when the client goes away (without
    # the request_finished handler, which would close the test's database connection)
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)

    # then
    entry = AccessLogEntry.objects.get()
    assert (entry.action, entry.target, entry.filters, entry.rows) == (
        "export_stock_history",
        "stock TRK-1@*",
        {"sku": "TRK-1"},
        1,
    )
    assert entry.actor == api.user.username


def test_an_export_costs_one_insert_however_many_rows(api, ledgers, audit):
    # given
    def inserts() -> int:
        with CaptureQueriesContext(connection) as queries:
            b"".join(api.get(STOCK_HISTORY, {"format": "csv"}).streaming_content)
        return sum('INSERT INTO "history_accesslogentry"' in q["sql"] for q in queries)

    # when
    few = inserts()
    for _ in range(5):
        stock_receive(sku="TRK-1", location="MAIN", quantity=1, audit=audit)
    more = inserts()

    # then
    assert few == more == 1
    assert list(AccessLogEntry.objects.order_by("id").values_list("rows", flat=True)) == [2, 7]


# --- the admin ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["auditor", "order_staff"])
def test_auditors_and_staff_see_the_access_log_but_cannot_add_change_or_delete(
    client, user_with_role, role
):
    # given
    entry = record()
    client.force_login(user_with_role(role))
    changelist = reverse("admin:history_accesslogentry_changelist")
    change = reverse("admin:history_accesslogentry_change", args=[entry.pk])
    delete = reverse("admin:history_accesslogentry_delete", args=[entry.pk])

    # when
    listed = client.get(changelist)
    viewed = client.get(change)
    searched = client.get(changelist, {"q": "order 12", "action__exact": "export_order_history"})
    added = client.post(reverse("admin:history_accesslogentry_add"), {})
    changed = client.post(change, {"actor": "someone else"})
    deleted = client.post(delete, {"post": "yes"})
    bulk_deleted = client.post(
        changelist, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )

    # then
    assert (listed.status_code, viewed.status_code, searched.status_code) == (200, 200, 200)
    assert list(listed.context["cl"].result_list) == [entry]
    assert list(searched.context["cl"].result_list) == [entry]
    assert 'name="_save"' not in viewed.content.decode()
    assert (added.status_code, changed.status_code, deleted.status_code) == (403, 403, 403)
    assert bulk_deleted.status_code in (200, 302)
    assert AccessLogEntry.objects.get().actor == "auditor-1"


def test_the_access_log_lists_its_columns_newest_first(admin_client, db):
    # given
    first = record(target="order 1")
    second = record(target="order 2", action=AccessAction.EXPORT_ADJUSTMENTS)

    # when
    response = admin_client.get(reverse("admin:history_accesslogentry_changelist"))

    # then
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [second, first]
    assert list(response.context["cl"].list_display) == [
        "occurred_at",
        "actor",
        "action",
        "target",
        "rows",
    ]


def test_a_user_without_a_role_cannot_see_the_access_log(client, user_with_role, db):
    # given
    record()
    client.force_login(user_with_role(None, is_staff=True))

    # when
    response = client.get(reverse("admin:history_accesslogentry_changelist"))

    # then
    assert response.status_code == 403
