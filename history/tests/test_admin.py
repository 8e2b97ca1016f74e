import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from history.models import OrderLedgerEntry, OutboxEvent
from orders.services import order_set_quantities

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


def test_ledger_filters_by_event_type_and_source(admin_client, order):
    # when
    response = admin_client.get(
        reverse("admin:history_orderledgerentry_changelist"),
        {"event_type": "order.quantity_adjusted", "source": "system"},
    )

    # then
    assert response.status_code == 200
    assert [(e.version, e.delta) for e in response.context["cl"].result_list] == [(2, 20)]


def test_outbox_published_filter_and_search(admin_client, order):
    # given
    created, adjusted = OutboxEvent.objects.order_by("id")
    OutboxEvent.objects.filter(pk=created.pk).update(published_at=created.created_at)
    url = reverse("admin:history_outboxevent_changelist")

    def found(params: dict) -> list[int]:
        response = admin_client.get(url, params)
        assert response.status_code == 200
        return [event.pk for event in response.context["cl"].result_list]

    # then
    assert found({"published": "yes"}) == [created.pk]
    assert found({"published": "no"}) == [adjusted.pk]
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
