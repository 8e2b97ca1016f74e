"""API tokens on the wire: `Authorization: Token ot_<prefix>_<secret>`, checked on every
request against the database or the Redis token cache, whose entries revocation, expiry
and deactivation replace at once, so they take effect on the very next request."""

import hashlib
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from config.models import ApiToken
from config.roles import Role
from config.tokens import api_token_create, api_tokens_revoke, token_parse
from tests.factories import UserFactory
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_token_is_stored_hashed():
    # given
    user = UserFactory(role=Role.INTEGRATOR)

    # when
    issued = api_token_create(user=user, name="erp")

    # then: the row holds the prefix and the SHA-256 of the secret, never the secret
    prefix, secret = token_parse(issued.key)
    assert issued.key == f"ot_{prefix}_{secret}"
    assert len(prefix) == 8 and len(secret) >= 32
    token = ApiToken.objects.get(pk=issued.token.pk)
    assert token.prefix == prefix
    assert token.digest == hashlib.sha256(secret.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM config_apitoken WHERE id = %s", [token.pk])
        row = cursor.fetchone()
    assert not any(secret in str(value) for value in row)


def test_two_tokens_of_one_user_differ_and_both_work():
    # given
    user = UserFactory(role=Role.INTEGRATOR)

    # when
    first, second = (api_token_create(user=user, name=name).key for name in ("a", "b"))

    # then
    assert first != second
    assert _client(first).get(ORDERS).status_code == 200
    assert _client(second).get(ORDERS).status_code == 200


def test_a_revoked_token_is_refused_on_the_very_next_request(api, make_order, product):
    # given: the token was just used, and the order is in the cache
    order = make_order(lines={product.sku: 1})
    assert api.get(f"{ORDERS}{order.pk}/").status_code == 200
    assert api.get(f"{ORDERS}{order.pk}/")["X-Cache"] == "hit"

    # when
    api_tokens_revoke(token_ids=[api.token.pk])

    # then
    response = api.get(f"{ORDERS}{order.pk}/")
    body = assert_problem(response, 401, "token_revoked")
    assert body["detail"] == "This token was revoked."
    assert response["WWW-Authenticate"] == "Token"


def test_a_deactivated_user_is_refused_at_once(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 1})
    assert api.get(f"{ORDERS}{order.pk}/").status_code == 200

    # when
    api.user.is_active = False
    api.user.save(update_fields=["is_active"])

    # then
    assert_problem(api.get(f"{ORDERS}{order.pk}/"), 401, "user_inactive")


def test_a_role_taken_away_counts_at_once(api):
    # given
    assert api.post(ORDERS, {}, format="json").status_code == 400  # allowed to try

    # when
    api.user.groups.remove(Group.objects.get(name=Role.INTEGRATOR))
    api.user.groups.add(Group.objects.get(name=Role.AUDITOR))

    # then
    assert_problem(api.post(ORDERS, {}, format="json"), 403, "permission_denied")
    assert api.get(ORDERS).status_code == 200


@pytest.fixture
def clock(monkeypatch):
    """Moves authentication's clock: `clock(seconds)` sets it that far ahead of now."""
    from config.api import authentication

    def move(seconds: float) -> None:
        later = time.time() + seconds
        monkeypatch.setattr(authentication, "_clock", lambda: later)

    return move


def test_an_expired_token_is_refused(clock):
    # given: a one-day token, used (and cached)
    issued = api_token_create(user=UserFactory(role=Role.INTEGRATOR), name="a", days=1)
    client = _client(issued.key)
    assert client.get(ORDERS).status_code == 200

    # when: a day later
    clock(24 * 60 * 60 + 1)
    response = client.get(ORDERS)

    # then
    body = assert_problem(response, 401, "token_expired")
    assert "issue a new one" in body["detail"]


def test_an_expiry_moved_in_the_database_counts_without_the_cache(api, settings):
    # given: no token cache
    settings.API_TOKEN_CACHE_SECONDS = 0
    assert api.get(ORDERS).status_code == 200

    # when
    past = timezone.now() - timedelta(days=100)
    ApiToken.objects.filter(pk=api.token.pk).update(
        created_at=past, expires_at=timezone.now() - timedelta(seconds=1)
    )

    # then
    assert_problem(api.get(ORDERS), 401, "token_expired")


def test_a_token_until_its_expiry_works():
    # given
    token = api_token_create(user=UserFactory(role=Role.AUDITOR), name="a", days=1)

    # when
    ApiToken.objects.filter(pk=token.token.pk).update(
        expires_at=timezone.now() + timedelta(seconds=30)
    )

    # then
    assert _client(token.key).get(ORDERS).status_code == 200


def test_a_right_prefix_with_a_wrong_secret_is_refused_and_says_nothing_more(api):
    # given
    prefix, secret = token_parse(api.key)
    ApiToken.objects.filter(pk=api.token.pk).update(revoked_at=timezone.now())
    wrong = f"ot_{prefix}_{'x' * len(secret)}"

    # when
    response = _client(wrong).get(ORDERS)

    # then: not 'revoked': that is told only to whoever holds the secret
    body = assert_problem(response, 401, "authentication_failed")
    assert body["detail"] == "Invalid token."


@pytest.mark.parametrize(
    "header",
    [
        "Token " + "0" * 40,  # an old plaintext token
        "Token ot_abcdefgh_" + "s" * 43,  # well-formed, unknown
        "Token ot_ABCDEFGH_" + "s" * 43,
        "Token ot_abcdefgh_short",
        "Token not-a-real-token",
        "Token",
        "Token a b",
    ],
)
def test_unknown_or_malformed_tokens_are_401_problems(header):
    # when
    response = APIClient().get(ORDERS, HTTP_AUTHORIZATION=header)

    # then
    assert_problem(response, 401)
    assert response["WWW-Authenticate"] == "Token"


def test_a_cached_token_request_costs_no_statement(
    api, make_order, product, django_assert_num_queries
):
    # given: a cached order, and a token used (and cached) within the minute
    order = make_order(lines={product.sku: 1})
    api.get(f"{ORDERS}{order.pk}/")

    # when / then: the token, its user and roles from the token cache, the order from its own
    with django_assert_num_queries(0):
        response = api.get(f"{ORDERS}{order.pk}/")
    assert response.status_code == 200
    assert response["X-Cache"] == "hit"


def test_without_the_cache_a_token_request_costs_one_statement(
    api, make_order, product, settings, django_assert_num_queries
):
    # given
    settings.API_TOKEN_CACHE_SECONDS = 0
    order = make_order(lines={product.sku: 1})
    api.get(f"{ORDERS}{order.pk}/")

    # when / then: token, user and roles in one statement; the order from the cache
    with django_assert_num_queries(1):
        response = api.get(f"{ORDERS}{order.pk}/")
    assert response["X-Cache"] == "hit"


@pytest.mark.parametrize("cache_seconds", [60, 0])
def test_last_used_at_is_written_at_most_once_a_minute(api, clock, settings, cache_seconds):
    # given: never used
    settings.API_TOKEN_CACHE_SECONDS = cache_seconds
    assert ApiToken.objects.get(pk=api.token.pk).last_used_at is None

    # when: used three times
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert api.get(ORDERS).status_code == 200

    # then: written once
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(writes) == 1
    first = ApiToken.objects.get(pk=api.token.pk).last_used_at
    assert first is not None

    # when: a minute later
    clock(61)
    api.get(ORDERS)
    api.get(ORDERS)

    # then: written again
    assert ApiToken.objects.get(pk=api.token.pk).last_used_at >= first + timedelta(seconds=60)


def test_session_authentication_still_works_without_a_token():
    # given
    client = APIClient()
    client.force_login(UserFactory(role=Role.AUDITOR))

    # then
    assert client.get(ORDERS).status_code == 200
