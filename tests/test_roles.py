"""Who may call what: anonymous 401, no role 403, auditors read only, staff and integrators
read and write. Token and session authentication both work."""

import pytest
from rest_framework.test import APIClient

from config.tokens import api_token_create
from history.models import IdempotencyRecord, OrderLedgerEntry, OutboxEvent, StockLedgerEntry
from inventory.models import Location, Product, Reservation, StockLevel, Transfer
from inventory.services import location_create, reservation_create, stock_receive, transfer_create
from orders.models import Customer, Order, OrderLine
from tests.factories import ProductFactory, UserFactory
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db


def _no_body(objects):
    return None


# name, method, path template, body, status on success
ENDPOINTS = [
    ("products-list", "get", "/api/v1/products/", _no_body, 200),
    (
        "products-create",
        "post",
        "/api/v1/products/",
        lambda o: {"sku": "NEW-1", "name": "New"},
        201,
    ),
    ("products-detail", "get", "/api/v1/products/{sku}/", _no_body, 200),
    ("customers-list", "get", "/api/v1/customers/", _no_body, 200),
    ("customers-create", "post", "/api/v1/customers/", lambda o: {"name": "ACME"}, 201),
    ("customers-detail", "get", "/api/v1/customers/{customer}/", _no_body, 200),
    ("orders-list", "get", "/api/v1/orders/", _no_body, 200),
    (
        "orders-create",
        "post",
        "/api/v1/orders/",
        lambda o: {"lines": [{"sku": o["sku"], "quantity": 1}]},
        201,
    ),
    ("orders-detail", "get", "/api/v1/orders/{order}/", _no_body, 200),
    (
        "orders-patch",
        "patch",
        "/api/v1/orders/{order}/",
        lambda o: {"lines": [{"sku": o["sku"], "quantity": 7}], "reason": "r"},
        200,
    ),
    (
        "orders-adjust",
        "post",
        "/api/v1/orders/{order}/adjust/",
        lambda o: {"sku": o["sku"], "delta": 1, "reason": "r"},
        200,
    ),
    ("orders-cancel", "post", "/api/v1/orders/{order}/cancel/", lambda o: {"reason": "r"}, 200),
    ("orders-fulfil", "post", "/api/v1/orders/{order}/fulfil/", lambda o: {"reason": "r"}, 200),
    ("orders-history", "get", "/api/v1/orders/{order}/history/", _no_body, 200),
    ("adjustments-list", "get", "/api/v1/adjustments/", _no_body, 200),
    ("adjustments-csv", "get", "/api/v1/adjustments/?format=csv", _no_body, 200),
    ("locations-list", "get", "/api/v1/locations/", _no_body, 200),
    (
        "locations-create",
        "post",
        "/api/v1/locations/",
        lambda o: {"code": "NEW-LOC", "name": "New"},
        201,
    ),
    ("locations-detail", "get", "/api/v1/locations/{location}/", _no_body, 200),
    (
        "stock-receive",
        "post",
        "/api/v1/stock/receive/",
        lambda o: {"sku": o["tracked"], "location": o["location"], "quantity": 1, "reason": "r"},
        200,
    ),
    (
        "stock-issue",
        "post",
        "/api/v1/stock/issue/",
        lambda o: {"sku": o["tracked"], "location": o["location"], "quantity": 1, "reason": "r"},
        200,
    ),
    (
        "stock-adjust",
        "post",
        "/api/v1/stock/adjust/",
        lambda o: {
            "sku": o["tracked"],
            "location": o["location"],
            "delta": -1,
            "reason": "r",
            "reason_code": "lost",
        },
        200,
    ),
    (
        "stock-count",
        "post",
        "/api/v1/stock/count/",
        lambda o: {
            "sku": o["tracked"],
            "location": o["location"],
            "counted": 3,
            "reason": "r",
            "reason_code": "cycle_count",
        },
        200,
    ),
    (
        "stock-thresholds",
        "post",
        "/api/v1/stock/thresholds/",
        lambda o: {
            "sku": o["tracked"],
            "location": o["location"],
            "reorder_point": 4,
            "safety_stock": 1,
        },
        200,
    ),
    ("transfers-list", "get", "/api/v1/transfers/", _no_body, 200),
    (
        "transfers-create",
        "post",
        "/api/v1/transfers/",
        lambda o: {
            "sku": o["tracked"],
            "from_location": o["location"],
            "to_location": o["other_location"],
            "quantity": 1,
        },
        201,
    ),
    ("transfers-detail", "get", "/api/v1/transfers/{transfer}/", _no_body, 200),
    ("transfers-receive", "post", "/api/v1/transfers/{transfer}/receive/", lambda o: {}, 200),
    ("transfers-cancel", "post", "/api/v1/transfers/{transfer}/cancel/", lambda o: {}, 200),
    ("reservations-list", "get", "/api/v1/reservations/", _no_body, 200),
    (
        "reservations-create",
        "post",
        "/api/v1/reservations/",
        lambda o: {"sku": o["tracked"], "quantity": 1},
        201,
    ),
    ("reservations-detail", "get", "/api/v1/reservations/{reservation}/", _no_body, 200),
    (
        "reservations-confirm",
        "post",
        "/api/v1/reservations/{reservation}/confirm/",
        lambda o: {},
        200,
    ),
    (
        "reservations-cancel",
        "post",
        "/api/v1/reservations/{reservation}/cancel/",
        lambda o: {},
        200,
    ),
]
READS = [pytest.param(*e, id=e[0]) for e in ENDPOINTS if e[1] == "get"]
WRITES = [pytest.param(*e, id=e[0]) for e in ENDPOINTS if e[1] != "get"]
ALL = READS + WRITES


@pytest.fixture
def objects(make_order, product, customer, audit):
    order = make_order(lines={product.sku: 10}, customer=customer)
    tracked = ProductFactory(sku="TRK-1", track_inventory=True)
    main = location_create(code="WH-1", name="Main", priority=10)
    other = location_create(code="ST-1", name="Store", priority=20)
    stock_receive(sku=tracked.sku, location=main.code, quantity=20, audit=audit)
    transfer = transfer_create(
        sku=tracked.sku, from_location=main.code, to_location=other.code, quantity=5, audit=audit
    )
    reservation = reservation_create(sku=tracked.sku, quantity=2, audit=audit)
    return {
        "order": order.pk,
        "customer": customer.pk,
        "sku": product.sku,
        "tracked": tracked.sku,
        "location": main.code,
        "other_location": other.code,
        "transfer": transfer.pk,
        "reservation": reservation.pk,
    }


def state() -> dict[str, int]:
    models = (
        Product,
        Customer,
        Order,
        OrderLine,
        OrderLedgerEntry,
        OutboxEvent,
        IdempotencyRecord,
    )
    snapshot = {model.__name__: model.objects.count() for model in models}
    snapshot["versions"] = sum(Order.objects.values_list("version", flat=True))
    snapshot["locations"] = Location.objects.count()
    snapshot["stock"] = list(
        StockLevel.objects.order_by("pk").values_list(
            "on_hand", "reserved", "in_transit", "reorder_point", "safety_stock", "version"
        )
    )
    snapshot["stock_ledger"] = StockLedgerEntry.objects.count()
    snapshot["transfers"] = list(Transfer.objects.order_by("pk").values_list("status", "version"))
    snapshot["reservations"] = list(
        Reservation.objects.order_by("pk").values_list("status", "version")
    )
    return snapshot


def call(client, method, path, body, objects):
    url = path.format(**objects)
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, format="json")


@pytest.mark.parametrize(("name", "method", "path", "body", "ok"), ALL)
def test_anonymous_is_401_with_www_authenticate(objects, name, method, path, body, ok):
    # given
    before = state()

    # when
    response = call(APIClient(), method, path, body(objects), objects)

    # then
    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert state() == before


@pytest.mark.parametrize(("name", "method", "path", "body", "ok"), ALL)
def test_user_without_a_role_is_403(api_client_for, objects, name, method, path, body, ok):
    # given
    client = api_client_for(None)
    before = state()

    # when
    response = call(client, method, path, body(objects), objects)

    # then
    assert_problem(response, 403, "permission_denied")
    assert state() == before


@pytest.mark.parametrize(("name", "method", "path", "body", "ok"), READS)
def test_auditor_may_read(api_client_for, objects, name, method, path, body, ok):
    # when
    response = call(api_client_for("auditor"), method, path, body(objects), objects)

    # then
    assert response.status_code == ok


@pytest.mark.parametrize(("name", "method", "path", "body", "ok"), WRITES)
def test_auditor_may_not_write(api_client_for, objects, name, method, path, body, ok):
    # given
    client = api_client_for("auditor")
    before = state()

    # when
    response = call(client, method, path, body(objects), objects)

    # then
    assert_problem(response, 403, "permission_denied")
    assert state() == before


@pytest.mark.parametrize("role", ["integrator", "order_staff"])
@pytest.mark.parametrize(("name", "method", "path", "body", "ok"), ALL)
def test_integrators_and_staff_may_read_and_write(
    api_client_for, objects, role, name, method, path, body, ok
):
    # given
    client = api_client_for(role)
    before = state()

    # when
    response = call(client, method, path, body(objects), objects)

    # then
    assert response.status_code == ok, response.content if not response.streaming else ""
    if method != "get":
        assert state() != before


def test_superuser_without_a_group_may_write(objects):
    # given
    admin = UserFactory(is_superuser=True)
    client = APIClient()
    client.force_authenticate(admin)

    # when
    response = client.post(
        f"/api/v1/orders/{objects['order']}/adjust/",
        {"sku": objects["sku"], "delta": 1, "reason": "r"},
        format="json",
    )

    # then
    assert response.status_code == 200


def test_inactive_user_token_is_refused(objects):
    # given
    user = UserFactory(role="integrator", is_active=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='t').key}")

    # when
    response = client.get("/api/v1/orders/")

    # then
    assert_problem(response, 401, "user_inactive")


def test_writes_record_the_authenticated_user_as_actor(api_client_for, objects):
    # given
    client = api_client_for("order_staff")

    # when
    client.post(
        f"/api/v1/orders/{objects['order']}/adjust/",
        {"sku": objects["sku"], "delta": 1, "reason": "recount"},
        format="json",
    )

    # then
    entry = OrderLedgerEntry.objects.get(order_id=objects["order"], version=2)
    assert (entry.actor, entry.source, entry.reason) == (client.user.username, "api", "recount")


# --- session authentication --------------------------------------------------------------


def test_session_login_works_for_staff(objects):
    # given
    staff = UserFactory(role="order_staff")
    client = APIClient()
    client.force_login(staff)

    # when
    read = client.get(f"/api/v1/orders/{objects['order']}/")
    write = client.post(
        f"/api/v1/orders/{objects['order']}/adjust/",
        {"sku": objects["sku"], "delta": 2, "reason": "session"},
        format="json",
    )

    # then
    assert read.status_code == 200
    assert write.status_code == 200, write.content
    entry = OrderLedgerEntry.objects.get(order_id=objects["order"], version=2)
    assert entry.actor == staff.username


def test_session_login_for_auditor_reads_but_cannot_write(objects):
    # given
    client = APIClient()
    client.force_login(UserFactory(role="auditor"))

    # when
    read = client.get("/api/v1/adjustments/")
    write = client.post(f"/api/v1/orders/{objects['order']}/cancel/", {}, format="json")

    # then
    assert read.status_code == 200
    assert_problem(write, 403, "permission_denied")


def test_session_writes_need_a_csrf_token(objects):
    # given
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(UserFactory(role="order_staff"))
    url = f"/api/v1/orders/{objects['order']}/adjust/"
    body = {"sku": objects["sku"], "delta": 1, "reason": "csrf"}
    before = state()

    # when
    without_token = client.post(url, body, format="json")
    secret = "a" * 32
    client.cookies["csrftoken"] = secret
    with_token = client.post(url, body, format="json", HTTP_X_CSRFTOKEN=secret)

    # then
    assert_problem(without_token, 403, "permission_denied")
    assert "CSRF" in without_token.json()["detail"]
    assert with_token.status_code == 200, with_token.content
    assert state()["versions"] == before["versions"] + 1


def test_session_login_without_a_role_is_403(objects):
    # given
    user = UserFactory()
    user.refresh_from_db()  # UserFactory only saves the password when it adds a role
    client = APIClient()
    client.force_login(user)

    # when
    response = client.get("/api/v1/orders/")

    # then
    assert_problem(response, 403, "permission_denied")


# --- the groups' model permissions --------------------------------------------------------


def test_the_roles_migration_takes_every_model_permission_from_existing_integrator_groups():
    # given: a database from before, whose integrator group may view, add and change
    from django.contrib.auth.models import Group, Permission
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from config.roles import roles_migrate

    integrator = Group.objects.get(name="integrator")
    integrator.permissions.set(
        Permission.objects.filter(codename__in=["view_order", "add_order", "change_order"])
    )
    staff_before = set(Group.objects.get(name="order_staff").permissions.all())
    auditor_before = set(Group.objects.get(name="auditor").permissions.all())
    migration = ("orders", "0006_integrator_api_only")
    historical = MigrationExecutor(connection).loader.project_state(migration).apps

    # when: the migration's function runs on its historical models
    roles_migrate(historical, None)

    # then: integrators keep no model permission; the other roles keep theirs
    assert not integrator.permissions.exists()
    assert set(Group.objects.get(name="order_staff").permissions.all()) == staff_before
    assert set(Group.objects.get(name="auditor").permissions.all()) == auditor_before
    assert {"add_order", "change_order", "view_order"} <= {p.codename for p in staff_before}
