"""The Redis cache of token lookups (config.token_cache): every change that could make an
entry wrong replaces it by a tombstone at once, so a cached token never outlives a
revocation, a deactivation or a role change; a stale reader cannot put an entry back."""

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings
from django_redis import get_redis_connection

from config import token_cache
from config.api.authentication import _entry_from_database
from config.roles import Role
from config.tokens import api_tokens_revoke, token_parse
from tests.problems import assert_problem
from tests.proxy import TcpProxy

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"


def _raw(prefix: str) -> bytes | None:
    return get_redis_connection("default").get(token_cache._key(prefix))


def test_a_used_token_is_cached_without_its_secret_or_the_password_hash(api):
    # given
    prefix, secret = token_parse(api.key)

    # when
    assert api.get(ORDERS).status_code == 200

    # then
    raw = _raw(prefix)
    assert raw is not None
    assert secret.encode() not in raw
    assert api.user.password.encode() not in raw
    assert api.token.digest.encode() in raw


def test_a_stale_reader_cannot_put_an_entry_back_after_a_revocation(api):
    # given: a request read the token from the database just before it was revoked
    prefix, _ = token_parse(api.key)
    stale = _entry_from_database(prefix)
    api_tokens_revoke(token_ids=[api.token.pk])

    # when: that request stores what it read
    token_cache.token_cache_fill(prefix, stale)

    # then
    assert _raw(prefix) == b"-"
    assert_problem(api.get(ORDERS), 401, "token_revoked")


def test_removing_the_user_from_the_group_side_counts_at_once(api):
    # given
    assert api.post(ORDERS, {}, format="json").status_code == 400  # allowed to try

    # when
    Group.objects.get(name=Role.INTEGRATOR).user_set.remove(api.user)

    # then
    assert_problem(api.get(ORDERS), 403, "permission_denied")


def test_clearing_the_users_groups_counts_at_once(api):
    # given
    assert api.get(ORDERS).status_code == 200

    # when
    api.user.groups.clear()

    # then
    assert_problem(api.get(ORDERS), 403, "permission_denied")


def test_renaming_a_role_group_counts_at_once(api):
    # given
    assert api.get(ORDERS).status_code == 200
    group = Group.objects.get(name=Role.INTEGRATOR)

    # when
    group.name = "former-integrators"
    group.save()

    # then
    assert_problem(api.get(ORDERS), 403, "permission_denied")


def test_deleting_a_role_group_counts_at_once(api):
    # given
    assert api.get(ORDERS).status_code == 200

    # when
    Group.objects.filter(name=Role.INTEGRATOR).delete()

    # then
    assert_problem(api.get(ORDERS), 403, "permission_denied")


def test_a_deleted_user_is_refused_at_once(api):
    # given
    assert api.get(ORDERS).status_code == 200

    # when
    api.user.delete()

    # then
    assert_problem(api.get(ORDERS), 401, "authentication_failed")


def test_a_login_does_not_invalidate_the_users_tokens(api):
    # given
    prefix, _ = token_parse(api.key)
    assert api.get(ORDERS).status_code == 200
    cached = _raw(prefix)

    # when: what django.contrib.auth does on every login
    api.user.save(update_fields=["last_login"])

    # then
    assert _raw(prefix) == cached != b"-"


def test_another_database_never_reads_this_ones_entries(api, monkeypatch):
    # given: cached under this database's instance id
    assert api.get(ORDERS).status_code == 200
    prefix, _ = token_parse(api.key)
    here = token_cache._key(prefix)

    # when: another database (another instance id) behind the same Redis
    monkeypatch.setattr(token_cache, "_namespace_of", lambda: "another-database")

    # then
    assert token_cache._key(prefix) != here
    assert token_cache.token_cache_read(prefix) == (None, True)


def test_without_redis_the_cache_is_off(api, settings, django_assert_num_queries):
    # given: the embedded default (no REDIS_URL)
    settings.REDIS_URL = ""
    api.get(ORDERS)

    # when / then
    assert not token_cache.enabled()
    with django_assert_num_queries(2):  # the token, and the page of orders
        assert api.get(ORDERS).status_code == 200


def test_with_redis_down_tokens_are_read_from_the_database(api, settings):
    # given: the cache talks to Redis through a proxy that we cut
    proxy = TcpProxy("127.0.0.1", 6379)
    redis_cache = {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{proxy.port}/0"}
    try:
        with override_settings(CACHES={"default": redis_cache}):
            assert api.get(ORDERS).status_code == 200
            proxy.cut()

            # when
            working = api.get(ORDERS)
            api_tokens_revoke(token_ids=[api.token.pk])
            token_cache._breaker.close()  # as if the breaker had run out, Redis still down
            revoked = api.get(ORDERS)

            # then
            assert working.status_code == 200
            assert_problem(revoked, 401, "token_revoked")
    finally:
        token_cache._breaker.close()
        proxy.close()
