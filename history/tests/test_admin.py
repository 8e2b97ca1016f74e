import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from history import admin as history_admin
from history.models import (
    OrderLedgerEntry,
    OrderSnapshot,
    OutboxEvent,
    ProjectionCheckpoint,
    SkuDailyAdjustments,
    SkuDemand,
)
from history.projector import projection_lag
from orders.services import order_set_quantities
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

READ_ONLY_MODELS = [
    ("history", "orderledgerentry", OrderLedgerEntry),
    ("history", "outboxevent", OutboxEvent),
]


def admin_url(app_model: tuple, view: str, *args) -> str:
    app_label, model_name, _ = app_model
    return reverse(f"admin:{app_label}_{model_name}_{view}", args=args)


@pytest.fixture
def order(make_order, product, audit):
    order = make_order(lines={product.sku: 100})
    return order_set_quantities(
        order_id=order.pk, quantities={product.sku: 120}, expected_version=1, audit=audit
    )


@pytest.mark.parametrize("app_model", READ_ONLY_MODELS, ids=lambda m: m[1])
def test_superuser_can_view_but_not_add_change_or_delete(admin_client, order, app_model):
    # given
    model = app_model[2]
    obj = model.objects.order_by("id").first()
    rows = model.objects.count()

    # when
    changelist = admin_client.get(admin_url(app_model, "changelist"))
    view_page = admin_client.get(admin_url(app_model, "change", obj.pk))
    add_page = admin_client.get(admin_url(app_model, "add"))
    add_post = admin_client.post(admin_url(app_model, "add"), {})
    change_post = admin_client.post(admin_url(app_model, "change", obj.pk), {})
    delete_page = admin_client.get(admin_url(app_model, "delete", obj.pk))
    delete_post = admin_client.post(admin_url(app_model, "delete", obj.pk), {"post": "yes"})
    bulk_delete = admin_client.post(
        admin_url(app_model, "changelist"),
        {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"},
    )

    # then
    assert changelist.status_code == 200
    assert view_page.status_code == 200
    assert 'name="_save"' not in view_page.content.decode()
    assert [add_page.status_code, add_post.status_code] == [403, 403]
    assert change_post.status_code == 403
    assert [delete_page.status_code, delete_post.status_code] == [403, 403]
    assert bulk_delete.status_code in (200, 302)
    assert model.objects.count() == rows


@pytest.mark.parametrize("app_model", READ_ONLY_MODELS, ids=lambda m: m[1])
def test_auditor_can_view(client, user_with_role, order, app_model):
    # given
    client.force_login(user_with_role("auditor"))
    obj = app_model[2].objects.order_by("id").first()

    # when
    changelist = client.get(admin_url(app_model, "changelist"))
    view_page = client.get(admin_url(app_model, "change", obj.pk))

    # then
    assert (changelist.status_code, view_page.status_code) == (200, 200)


@pytest.mark.parametrize("app_model", READ_ONLY_MODELS, ids=lambda m: m[1])
def test_changelist_makes_no_query_per_row(admin_client, make_order, product, app_model):
    # given
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(admin_url(app_model, "changelist"))
        assert response.status_code == 200
        return len(queries)

    make_order(lines={product.sku: 1})
    few_rows = count_queries()
    for _ in range(5):
        make_order(lines={product.sku: 2})

    # when
    more_rows = count_queries()

    # then
    assert more_rows == few_rows


def test_ledger_search_by_order_id_sku_actor_and_event_id(
    admin_client, make_order, product, other_product
):
    # given
    first = make_order(lines={product.sku: 1})
    second = make_order(lines={other_product.sku: 2})
    url = reverse("admin:history_orderledgerentry_changelist")
    event_id = OrderLedgerEntry.objects.get(order=second).event_id

    def found(term: str) -> set[int]:
        response = admin_client.get(url, {"q": term})
        assert response.status_code == 200
        return {entry.order_id for entry in response.context["cl"].result_list}

    # then
    assert found(str(first.pk)) == {first.pk}
    assert found(other_product.sku) == {second.pk}
    assert found("tester") == {first.pk, second.pk}
    assert found(str(event_id)) == {second.pk}


@pytest.mark.parametrize(
    "changelist",
    [
        "history_orderledgerentry",
        "history_ordersnapshot",
        "history_stockledgerentry",
        "history_outboxevent",
    ],
)
def test_searching_for_a_digit_that_is_no_number_finds_nothing_instead_of_failing(
    client, user_with_role, order, changelist
):
    # given: a staff member; '²'.isdigit() is True, but int('²') raises
    client.force_login(user_with_role("order_staff"))
    url = reverse(f"admin:{changelist}_changelist")

    # when
    responses = {term: client.get(url, {"q": term}) for term in ("²", "1²", "9" * 30)}

    # then
    for term, response in responses.items():
        assert response.status_code == 200, term
        assert list(response.context["cl"].result_list) == [], term


def test_ledger_filters_by_event_type_and_source(admin_client, order):
    # when
    response = admin_client.get(
        reverse("admin:history_orderledgerentry_changelist"),
        {"event_type": "order.quantity_adjusted", "source": "system"},
    )

    # then
    assert response.status_code == 200
    assert [(e.version, e.delta) for e in response.context["cl"].result_list] == [(2, 20)]


def test_outbox_status_filter_and_search(admin_client, order):
    # given
    created, adjusted = OutboxEvent.objects.order_by("id")
    OutboxEvent.objects.filter(pk=created.pk).update(published_at=created.created_at)
    url = reverse("admin:history_outboxevent_changelist")

    def found(params: dict) -> list[int]:
        response = admin_client.get(url, params)
        assert response.status_code == 200
        return [event.pk for event in response.context["cl"].result_list]

    # then
    assert found({"status": "published"}) == [created.pk]
    assert found({"status": "pending"}) == [adjusted.pk]
    assert found({"q": str(adjusted.event_id)}) == [adjusted.pk]
    assert sorted(found({"q": str(order.pk)})) == [created.pk, adjusted.pk]
    assert found({"q": "no-such-aggregate"}) == []


def test_outbox_view_page_shows_the_payload(admin_client, order):
    # given
    event = OutboxEvent.objects.order_by("id").last()

    # when
    response = admin_client.get(reverse("admin:history_outboxevent_change", args=[event.pk]))

    # then
    assert response.status_code == 200
    assert "order.quantity_adjusted" in response.content.decode()
    assert "<pre" in response.content.decode()


SNAPSHOT_MODELS = [
    ("history", "projectioncheckpoint", ProjectionCheckpoint),
    ("history", "ordersnapshot", OrderSnapshot),
    ("history", "skudemand", SkuDemand),
    ("history", "skudailyadjustments", SkuDailyAdjustments),
]


@pytest.fixture
def snapshots(order, product):
    """Snapshot rows as the projector would leave them (written directly: the projector
    only sees committed rows, which a test transaction never is)."""
    now = timezone.now()
    ProjectionCheckpoint.objects.create(name="order_snapshots", applied_rows=2)
    OrderSnapshot.objects.create(
        order=order,
        status="open",
        total_quantity=120,
        lines={product.sku: 120},
        line_versions={product.sku: 2},
        total_adjustments=1,
        last_adjustment_delta=20,
        last_adjustment_version=2,
        last_version=2,
        last_updated=now,
    )
    SkuDemand.objects.create(sku=product.sku, open_quantity=120, adjustment_count=1)
    SkuDailyAdjustments.objects.create(
        sku=product.sku, day=now.date(), adjustment_count=1, net_delta=120
    )
    return order


@pytest.mark.parametrize("app_model", SNAPSHOT_MODELS, ids=lambda m: m[1])
def test_snapshot_admins_render_read_only(admin_client, snapshots, app_model):
    # given
    obj = app_model[2].objects.first()
    rows = app_model[2].objects.count()

    # when
    changelist = admin_client.get(admin_url(app_model, "changelist"))
    view_page = admin_client.get(admin_url(app_model, "change", obj.pk))
    add_page = admin_client.get(admin_url(app_model, "add"))
    change_post = admin_client.post(admin_url(app_model, "change", obj.pk), {})
    delete_post = admin_client.post(admin_url(app_model, "delete", obj.pk), {"post": "yes"})

    # then
    assert (changelist.status_code, view_page.status_code) == (200, 200)
    assert list(changelist.context["cl"].result_list) == [obj]
    assert 'name="_save"' not in view_page.content.decode()
    assert [add_page.status_code, change_post.status_code, delete_post.status_code] == [403] * 3
    assert app_model[2].objects.count() == rows


@pytest.mark.parametrize("app_model", SNAPSHOT_MODELS, ids=lambda m: m[1])
def test_user_with_view_permission_can_see_snapshots(client, snapshots, app_model):
    # given
    model_name = app_model[1]
    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="history", codename=f"view_{model_name}")
    )
    client.force_login(user)

    # when
    response = client.get(admin_url(app_model, "changelist"))

    # then
    assert response.status_code == 200


def test_order_snapshot_changelist_columns_filter_and_search(admin_client, snapshots, make_order):
    # given
    other = make_order(reference="OTHER")
    OrderSnapshot.objects.create(order=other, status="cancelled", last_version=2)
    url = reverse("admin:history_ordersnapshot_changelist")

    def found(params: dict) -> list[int]:
        response = admin_client.get(url, params)
        assert response.status_code == 200
        return [snapshot.order_id for snapshot in response.context["cl"].result_list]

    # when
    response = admin_client.get(url)

    # then
    content = response.content.decode()
    assert reverse("admin:orders_order_change", args=[snapshots.pk]) in content
    assert ">120<" in content
    assert found({"status": "cancelled"}) == [other.pk]
    assert found({"q": str(snapshots.pk)}) == [snapshots.pk]
    assert found({"q": "SKU-1"}) == []


def test_projection_checkpoint_changelist_shows_the_lag_once_per_page(
    admin_client, snapshots, monkeypatch
):
    # given: the checkpoint has applied nothing of the two ledger rows yet
    calls = []

    def counted_lag(**kwargs):
        calls.append(kwargs)
        return projection_lag(**kwargs)

    monkeypatch.setattr(history_admin, "projection_lag", counted_lag)
    ProjectionCheckpoint.objects.create(name="sku_demand")
    ProjectionCheckpoint.objects.create(name="no_longer_defined")

    # when
    response = admin_client.get(reverse("admin:history_projectioncheckpoint_changelist"))

    # then
    assert response.status_code == 200
    assert len(calls) == 1
    rows = {c.name: c for c in response.context["cl"].result_list}
    assert rows["order_snapshots"].lag.events_behind == 2
    assert rows["order_snapshots"].lag.seconds_behind >= 0
    assert rows["sku_demand"].lag.events_behind == 2
    assert rows["no_longer_defined"].lag is None
    content = response.content.decode()
    assert "Events behind" in content
    assert "Seconds behind" in content
    assert '<td class="field-events_behind">2</td>' in content
    assert '<td class="field-events_behind">—</td>' in content


@pytest.mark.parametrize("app_model", SNAPSHOT_MODELS, ids=lambda m: m[1])
def test_auditor_and_staff_can_view_snapshots(client, user_with_role, snapshots, app_model):
    for role in ("auditor", "order_staff"):
        # given
        client.force_login(user_with_role(role))

        # when
        response = client.get(admin_url(app_model, "changelist"))

        # then
        assert response.status_code == 200, role


def test_stock_ledger_and_stock_totals_admins_are_read_only(client, audit):
    # given
    from django.contrib.auth.models import User

    from history.models import StockLedgerEntry
    from inventory.services import location_create, stock_receive
    from tests.factories import ProductFactory

    product = ProductFactory(track_inventory=True)
    location_create(code="ADM", name="Admin test")
    stock_receive(sku=product.sku, location="ADM", quantity=5, audit=audit)
    entry = StockLedgerEntry.objects.get()
    admin_user = User.objects.create_superuser("root-stock", "r@example.com", "pw-123456789")
    client.force_login(admin_user)

    # when
    listing = client.get("/admin/history/stockledgerentry/")
    detail = client.get(f"/admin/history/stockledgerentry/{entry.pk}/change/")
    delete = client.post(f"/admin/history/stockledgerentry/{entry.pk}/delete/", {"post": "yes"})
    totals = client.get("/admin/history/skustocktotals/")

    # then
    assert listing.status_code == 200 and product.sku in listing.content.decode()
    assert detail.status_code == 200
    assert delete.status_code == 403
    assert StockLedgerEntry.objects.count() == 1
    assert totals.status_code == 200
