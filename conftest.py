import pytest

from history.audit import Audit
from history.models import Source
from orders.services import order_create
from scripts.check_services import missing_services
from tests.clients import ApiClient
from tests.factories import CustomerFactory, ProductFactory, UserFactory


def pytest_configure(config):
    problems = missing_services()
    if problems:
        raise pytest.UsageError("Required services are down:\n  " + "\n  ".join(problems))
    # Before any test database is migrated: `migrate` grants this role its privileges.
    from django.conf import settings

    from tests import database

    database.runtime_role_ensure(database.owner_dsn(), settings.DATABASE_RUNTIME_ROLE)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """The test database was created and migrated as the owner; the tests run as the
    least-privileged runtime role, as the application does (tests/database.py)."""
    from django.conf import settings
    from django.db import connections

    from tests import database

    owner = database.remember_owner()
    database.flush_as_owner(owner, connections["default"].settings_dict["NAME"])
    database.connect_as(settings.DATABASE_RUNTIME_ROLE)
    yield
    database.connect_as(owner["user"])


@pytest.fixture(scope="session", autouse=True)
def _own_exchange_deleted_at_the_end():
    """The run's exchanges (one event exchange and its consumers' dead-letter exchange per
    xdist worker) are its own: delete them when the run ends, so runs leave nothing behind
    on the shared broker."""
    yield
    from django.conf import settings
    from kombu import Connection, Exchange

    from history.consumers import dead_letter_exchange

    with Connection(settings.EVENT_BUS_URL, connect_timeout=2) as connection:
        Exchange(settings.EVENT_EXCHANGE)(connection.default_channel).delete()
        dead_letter_exchange()(connection.default_channel).delete()


@pytest.fixture(autouse=True)
def _redis_breakers_closed():
    """A test that cut Redis leaves the caches' breakers open for seconds; the next test
    starts with them closed."""
    from config.redis_breaker import RedisBreaker

    for breaker in RedisBreaker.every:
        breaker.close()
    yield
    for breaker in RedisBreaker.every:
        breaker.close()


@pytest.fixture
def consumer_queue():
    """A unique consumer queue name on the run's exchange; the queue and its dead-letter
    queue are deleted afterwards, even if the test fails."""
    from tests.broker import consumer_queue_name, consumer_queues_delete

    name = consumer_queue_name()
    yield name
    consumer_queues_delete(name)


@pytest.fixture
def audit():
    return Audit(actor="tester", source=Source.SYSTEM, reason="test")


@pytest.fixture
def product(db):
    return ProductFactory(sku="SKU-1", name="Widget")


@pytest.fixture
def other_product(db):
    return ProductFactory(sku="SKU-2", name="Gadget")


@pytest.fixture
def customer(db):
    return CustomerFactory()


@pytest.fixture
def make_order(db, audit):
    def make(lines=None, customer=None, reference="REF-1"):
        if lines is None:
            lines = {ProductFactory().sku: 100}
        return order_create(
            customer_id=customer.pk if customer else None,
            reference=reference,
            lines=lines,
            audit=audit,
        )

    return make


@pytest.fixture
def user_with_role(db):
    def make(role: str | None, **kwargs):
        return UserFactory(role=role, **kwargs)

    return make


@pytest.fixture
def api_client_for(user_with_role):
    """A client authenticated by token as a fresh user with the given role, through the
    middleware stack production gives token requests; `client.token` is its ApiToken,
    `client.key` the token string."""
    from config.tokens import api_token_create

    def make(role: str | None = "integrator"):
        user = user_with_role(role)
        issued = api_token_create(user=user, name="test")
        client = ApiClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {issued.key}")
        client.user, client.token, client.key = user, issued.token, issued.key
        return client

    return make


@pytest.fixture
def api(api_client_for):
    return api_client_for("integrator")
