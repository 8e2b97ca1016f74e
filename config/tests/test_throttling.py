"""Rate limits per role and per token (config.api.throttling): 429 problem details with
Retry-After, counted in Redis (the default cache) or, in the embedded default, in local
memory."""

import time

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from config.api import throttling
from config.tokens import api_token_create
from tests.factories import UserFactory
from tests.problems import assert_problem
from tests.proxy import TcpProxy

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"
ADJUSTMENTS = "/api/v1/adjustments/"
SCHEMA = "/api/schema/"
OPEN = {s: "off" for s in ("integrator", "staff", "auditor", "csv_export", "anon")}


@pytest.fixture
def rates(settings):
    """rates(integrator="2/minute", ...): those scopes limited, every other one off."""

    def set_rates(**limits):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**OPEN, **limits},
        }

    return set_rates


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The throttle's clock stands still at the start of a minute, so that a test's requests
    all fall in one window however slowly they run (a real clock may cross a window's end
    between two of them). clock(seconds) moves it that far on."""
    start = (time.time() // 3600 + 1) * 3600

    def move(seconds: float) -> None:
        monkeypatch.setattr(throttling, "_clock", lambda: start + seconds)

    move(0)
    return move


def _statuses(client, path, n, **extra) -> list[int]:
    return [client.get(path, **extra).status_code for _ in range(n)]


def test_an_integrator_over_the_rate_gets_429_with_retry_after(api, rates):
    # given
    rates(integrator="3/minute")

    # when
    statuses = _statuses(api, ORDERS, 3)
    response = api.get(ORDERS)

    # then
    assert statuses == [200, 200, 200]
    body = assert_problem(response, 429, "throttled")
    assert body["title"] == "Too Many Requests"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert f"{response['Retry-After']} second" in body["detail"]


def test_the_next_window_lets_the_caller_in_again(api, rates, clock):
    # given
    rates(integrator="2/minute")
    clock(0)
    _statuses(api, ORDERS, 2)
    assert api.get(ORDERS).status_code == 429

    # when
    clock(61)

    # then
    assert api.get(ORDERS).status_code == 200


def test_each_token_has_its_own_bucket(api, rates):
    # given: the user's first token is used up
    rates(integrator="2/minute")
    _statuses(api, ORDERS, 2)
    assert api.get(ORDERS).status_code == 429

    # when: the same user with a second token
    second = APIClient()
    second.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=api.user, name='b').key}")

    # then
    assert second.get(ORDERS).status_code == 200


def test_a_token_request_is_counted_ahead_in_its_token_lookup_and_only_once(api, rates):
    # given: the token's first request named its bucket
    rates(integrator="3/minute")
    assert throttling.count_ahead(api.key).key is None
    assert api.get(ORDERS).status_code == 200

    # when: the next ones are counted in the token lookup's round trip
    ahead = throttling.count_ahead(api.key)
    statuses = _statuses(api, ORDERS, 3)

    # then: in the same bucket as the throttle's own count, once a request
    assert ahead.key == cache.make_key(
        f"throttle:integrator:token:{api.token.pk}:60:{int(throttling._clock() // 60)}"
    )
    assert statuses == [200, 200, 429]
    assert int(get_redis_connection("default").get(ahead.key)) == 4


def test_a_wrong_secret_with_a_tokens_prefix_is_not_counted_in_its_bucket(api, rates):
    # given: two of three requests used
    rates(integrator="3/minute")
    _statuses(api, ORDERS, 2)
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Token ot_{api.token.prefix}_{'x' * 43}")

    # when
    assert _statuses(forged, ORDERS, 3) == [401, 401, 401]

    # then
    assert _statuses(api, ORDERS, 2) == [200, 429]


def test_a_role_change_moves_the_count_to_the_new_roles_bucket_once(api, rates):
    # given: an integrator's token, counted ahead in the integrator bucket
    from django.contrib.auth.models import Group

    rates(integrator="5/minute", auditor="2/minute")
    _statuses(api, ORDERS, 2)

    # when: the user becomes an auditor instead
    api.user.groups.set([Group.objects.get(name="auditor")])

    # then: counted in the auditor bucket, once a request, from the next request on
    assert _statuses(api, ORDERS, 3) == [200, 200, 429]


@pytest.mark.parametrize(
    ("role", "scope"),
    [("integrator", "integrator"), ("order_staff", "staff"), ("auditor", "auditor")],
)
def test_each_role_has_its_own_rate(api_client_for, rates, role, scope):
    # given: only this role's rate is low
    rates(**{scope: "2/minute"})
    limited = api_client_for(role)
    others = [api_client_for(r) for r in ("integrator", "order_staff", "auditor") if r != role]

    # when
    statuses = _statuses(limited, ORDERS, 3)

    # then
    assert statuses == [200, 200, 429]
    for other in others:
        assert _statuses(other, ORDERS, 3) == [200, 200, 200]


def test_a_superuser_has_the_staff_rate(rates):
    # given
    rates(staff="1/minute")
    client = APIClient()
    client.force_login(UserFactory(is_superuser=True, is_staff=True))

    # then
    assert _statuses(client, ORDERS, 2) == [200, 429]


def test_a_user_with_two_roles_gets_the_more_generous_rate(api_client_for, rates):
    # given
    from django.contrib.auth.models import Group

    rates(auditor="1/minute", integrator="5/minute")
    client = api_client_for("auditor")
    client.user.groups.add(Group.objects.get(name="integrator"))

    # then
    assert _statuses(client, ORDERS, 3) == [200, 200, 200]


def test_csv_exports_have_their_own_lower_rate(api_client_for, rates, make_order, product):
    # given
    make_order(lines={product.sku: 1})
    rates(auditor="100/minute", csv_export="2/hour")
    auditor = api_client_for("auditor")

    # when
    exports = _statuses(auditor, ADJUSTMENTS, 3, data={"format": "csv"})
    throttled = auditor.get(ADJUSTMENTS, {"format": "csv"})
    pages = _statuses(auditor, ADJUSTMENTS, 3)

    # then: the third export waits for the hour's window; JSON pages go on
    assert exports == [200, 200, 429]
    assert_problem(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) <= 3600
    assert pages == [200, 200, 200]


def test_the_stock_history_export_counts_as_a_csv_export(api_client_for, rates):
    # given
    rates(csv_export="1/hour")
    auditor = api_client_for("auditor")

    # then
    assert _statuses(auditor, "/api/v1/stock/history/", 2, data={"format": "csv"}) == [200, 429]


def test_anonymous_requests_have_a_low_rate_per_client_address(rates):
    # given
    rates(anon="2/minute")
    client = APIClient()

    # when
    first = _statuses(client, SCHEMA, 3, REMOTE_ADDR="192.0.2.10")
    other_address = client.get(SCHEMA, REMOTE_ADDR="192.0.2.11")

    # then
    assert first == [200, 200, 429]
    assert other_address.status_code == 200


def test_a_forged_forwarded_for_header_gets_no_fresh_bucket(rates):
    # given: no proxy in front (NUM_PROXIES=0)
    rates(anon="1/minute")
    client = APIClient()
    assert client.get(SCHEMA, REMOTE_ADDR="192.0.2.20").status_code == 200

    # when
    response = client.get(SCHEMA, REMOTE_ADDR="192.0.2.20", HTTP_X_FORWARDED_FOR="198.51.100.7")

    # then
    assert_problem(response, 429, "throttled")


def test_behind_a_proxy_the_forwarded_address_is_the_client(rates, settings):
    # given: one proxy in front, which appends the address it saw
    rates(anon="1/minute")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    client = APIClient()

    # when
    first = client.get(SCHEMA, REMOTE_ADDR="192.0.2.30", HTTP_X_FORWARDED_FOR="198.51.100.8")
    second = client.get(SCHEMA, REMOTE_ADDR="192.0.2.30", HTTP_X_FORWARDED_FOR="198.51.100.9")

    # then: two clients behind the same proxy
    assert (first.status_code, second.status_code) == (200, 200)


def test_refused_credentials_count_at_the_anonymous_rate_in_a_bucket_of_their_own(
    api_client_for, rates
):
    # given: one address sends bogus and malformed tokens, and also has a valid one
    rates(anon="2/minute", integrator="10/minute")
    address = {"REMOTE_ADDR": "192.0.2.40"}
    bogus = APIClient(**address)
    valid = api_client_for("integrator")

    # when
    refused = [
        bogus.get(ORDERS, HTTP_AUTHORIZATION="Token nonsense").status_code,
        bogus.get(ORDERS, HTTP_AUTHORIZATION=f"Token ot_abcdefgh_{'x' * 43}").status_code,
    ]
    over = bogus.get(ORDERS, HTTP_AUTHORIZATION="Token a b")
    elsewhere = APIClient(REMOTE_ADDR="192.0.2.41").get(ORDERS, HTTP_AUTHORIZATION="Token x")

    # then: 401 until the rate, then 429; the valid token and the schema are not held back
    assert refused == [401, 401]
    assert_problem(over, 429, "throttled")
    assert int(over["Retry-After"]) >= 1
    assert elsewhere.status_code == 401
    assert valid.get(ORDERS, **address).status_code == 200
    assert APIClient(**address).get(SCHEMA).status_code == 200


def test_off_means_no_limit(api, rates):
    # given
    rates(integrator="off")

    # then
    assert set(_statuses(api, ORDERS, 5)) == {200}


def test_the_local_memory_cache_of_the_embedded_default_counts_too(api, rates):
    # given: no Redis, Django's local-memory cache
    rates(integrator="2/minute")
    local = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with override_settings(CACHES=local, REDIS_URL=""):
        # when
        statuses = _statuses(api, ORDERS, 3)

    # then
    assert statuses == [200, 200, 429]


def test_with_redis_down_requests_are_let_through(api, rates, settings):
    # given: the cache talks to Redis through a proxy that we cut
    rates(integrator="1/minute")
    proxy = TcpProxy("127.0.0.1", 6379)
    redis_cache = {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{proxy.port}/0"}
    try:
        with override_settings(CACHES={"default": redis_cache}):
            proxy.cut()

            # when
            statuses = _statuses(api, ORDERS, 3)

            # then
            assert statuses == [200, 200, 200]
    finally:
        proxy.close()


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [("6000/minute", (6000, 60)), ("5/s", (5, 1)), ("60/hour", (60, 3600)), ("1/day", (1, 86400))],
)
def test_rates_parse(rate, parsed):
    assert throttling.parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["off", "", None, "OFF"])
def test_off_rates_parse_to_no_limit(rate):
    assert throttling.parse_rate(rate) is None


@pytest.mark.parametrize("rate", ["6000", "x/minute", "5/fortnight", "-1/minute"])
def test_a_mistyped_rate_fails_at_start(rate, settings):
    # given
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**OPEN, "staff": rate},
    }

    # then
    with pytest.raises(ImproperlyConfigured, match="Rate limit 'staff'"):
        throttling.rates_check()


def test_the_benchmarks_integrator_is_not_throttled(monkeypatch, tmp_path):
    # given: make bench's server environment (64 clients share one integrator's token)
    from types import SimpleNamespace

    from bench.load import production_env

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    env = production_env(SimpleNamespace(amqp_url="amqp://"), "postgres://")

    # then: raised far above thousands a second, yet still counted
    limit, seconds = throttling.parse_rate(env["THROTTLE_INTEGRATOR"])
    assert limit / seconds > 1_000_000
