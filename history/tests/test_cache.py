import pytest
from django.core.cache import cache
from django.test import override_settings
from django_redis import get_redis_connection

from config.api import throttling
from config.replica import OK, REPLICA, ReadRoute, read_route_enter, read_route_leave
from config.token_cache import token_cache_read
from history import cache as aggregate_cache
from history.cache import cache_fill, cache_read, cache_tombstones
from orders.services import order_adjust
from tests.proxy import TcpProxy

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_cache():
    # This run's keys only: cache.clear() would FLUSHDB the shared Redis.
    cache.delete_pattern("*")
    aggregate_cache._breaker.close()
    yield
    aggregate_cache._breaker.close()


def test_a_read_is_served_from_redis_after_the_first_miss(api, make_order, product):
    # given
    order = make_order(lines={product.sku: 5})

    # when
    first = api.get(f"/api/v1/orders/{order.pk}/")
    second = api.get(f"/api/v1/orders/{order.pk}/")

    # then
    assert (first["X-Cache"], second["X-Cache"]) == ("miss", "hit")
    assert first.json() == second.json()
    assert second["ETag"] == '"1"'
    assert cache_read("order", str(order.pk)).version == 1


def test_a_token_read_gets_the_entry_in_the_token_lookups_round_trip(api, make_order, product):
    # given: the entry is cached, and the token's lookup is in the token cache
    order = make_order(lines={product.sku: 5})
    api.get(f"/api/v1/orders/{order.pk}/")
    prefetch = aggregate_cache.CachePrefetch("order", str(order.pk))
    ahead = throttling.count_ahead(api.key)

    # when: read with the token, as the view asks, beside the rate limit's count
    entry, _ = token_cache_read(api.token.prefix, [ahead, prefetch])

    # then: each rider got its own results
    assert entry is not None and entry[0] == api.token.pk
    assert prefetch.done and prefetch.raw.startswith(b"1|{")
    # what the view then serves is the entry read ahead, not a second GET
    get_redis_connection("default").set(prefetch.key, b"1|changed-since")
    found = cache_read("order", str(order.pk), prefetch)
    assert (found.status, found.version) == ("hit", 1)
    assert found.body.startswith(b"{") and found.body != b"changed-since"


def test_reads_without_the_token_lookup_get_the_entry_themselves(
    api, make_order, product, admin_client
):
    order = make_order(lines={product.sku: 5})
    api.get(f"/api/v1/orders/{order.pk}/")
    as_of = api.get(f"/api/v1/orders/{order.pk}/", {"as_of": "2999-01-01T00:00:00Z"})
    assert as_of.status_code == 200 and "X-Cache" not in as_of
    session = admin_client.get(f"/api/v1/orders/{order.pk}/")
    assert (session.status_code, session["X-Cache"]) == (200, "hit")


@pytest.mark.django_db(transaction=True)
def test_a_read_after_a_write_sees_the_write(api, make_order, product, audit):
    # given: version 1 is cached
    order = make_order(lines={product.sku: 5})
    api.get(f"/api/v1/orders/{order.pk}/")

    # when
    patched = api.patch(
        f"/api/v1/orders/{order.pk}/",
        {"lines": [{"sku": product.sku, "quantity": 9}], "reason": "r"},
        format="json",
    )
    order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=audit)
    read = api.get(f"/api/v1/orders/{order.pk}/")

    # then
    assert patched.status_code == 200
    assert read["X-Cache"] == "miss"
    assert read["ETag"] == '"3"'
    assert read.json()["lines"] == [{"sku": product.sku, "quantity": 10}]
    assert api.get(f"/api/v1/orders/{order.pk}/")["X-Cache"] == "hit"


def test_a_stale_reader_cannot_overwrite_a_newer_write(make_order, product):
    # given: a write of version 2 committed and left its tombstone
    order = make_order(lines={product.sku: 5})
    cache_tombstones({("order", str(order.pk)): 2})

    # when: a slow reader that loaded version 1 before the write tries to fill the cache
    cache_fill("order", str(order.pk), 1, b'{"version": 1}')

    # then
    assert tuple(cache_read("order", str(order.pk))) == (None, None, "miss")
    cache_fill("order", str(order.pk), 2, b'{"version": 2}')
    assert tuple(cache_read("order", str(order.pk))) == (b'{"version": 2}', 2, "hit")
    cache_fill("order", str(order.pk), 1, b'{"version": 1}')
    cache_tombstones({("order", str(order.pk)): 2})
    assert tuple(cache_read("order", str(order.pk)))[1] == 2


def test_reads_fall_back_to_the_database_when_redis_is_down(api, make_order, product, settings):
    # given: the cache talks to Redis through a proxy that we cut
    order = make_order(lines={product.sku: 5})
    proxy = TcpProxy("127.0.0.1", 6379)
    redis_cache = {
        **settings.CACHES["default"],
        "LOCATION": f"redis://127.0.0.1:{proxy.port}/0",
    }
    try:
        with override_settings(CACHES={"default": redis_cache}):
            assert api.get(f"/api/v1/orders/{order.pk}/")["X-Cache"] == "miss"
            proxy.cut()

            # when
            response = api.get(f"/api/v1/orders/{order.pk}/")

            # then
            assert response.status_code == 200
            assert response["X-Cache"] == "degraded"
            assert response.json()["lines"] == [{"sku": product.sku, "quantity": 5}]
            ready = api.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["cache"]["status"] == "down"
    finally:
        proxy.close()


def test_many_tombstones_in_one_round_trip_block_stale_readers(make_order, product):
    # given: two cached orders at version 1
    first, second = make_order(lines={product.sku: 1}), make_order(lines={product.sku: 2})
    for order in (first, second):
        cache_fill("order", str(order.pk), 1, b'{"version": 1}')

    # when: a bulk write leaves tombstones for versions 3 and 2
    cache_tombstones({("order", str(first.pk)): 3, ("order", str(second.pk)): 2})
    cache_fill("order", str(first.pk), 2, b'{"version": 2}')

    # then
    assert tuple(cache_read("order", str(first.pk))) == (None, None, "miss")
    assert tuple(cache_read("order", str(second.pk))) == (None, None, "miss")
    cache_fill("order", str(second.pk), 2, b'{"version": 2}')
    assert tuple(cache_read("order", str(second.pk)))[1] == 2


def test_without_redis_the_cache_is_off_and_reads_come_from_the_database(
    api, make_order, product, settings, django_assert_num_queries
):
    # given: no REDIS_URL, as in the embedded default
    settings.REDIS_URL = ""
    order = make_order(lines={product.sku: 5})
    key = aggregate_cache._key("order", str(order.pk))
    api.get(f"/api/v1/orders/{order.pk}/")

    # when: every read costs its query (and the token its own), and nothing reaches Redis
    with django_assert_num_queries(2):
        first = api.get(f"/api/v1/orders/{order.pk}/")
    second = api.get(f"/api/v1/orders/{order.pk}/")

    # then
    assert (first["X-Cache"], second["X-Cache"]) == ("off", "off")
    assert second.json()["lines"] == [{"sku": product.sku, "quantity": 5}]
    assert not get_redis_connection("default").exists(key)
    assert cache_read("order", str(order.pk)).status == "off"


@pytest.mark.django_db(transaction=True)
def test_a_representation_read_from_the_replica_is_not_cached(make_order, product):
    # given: an order, committed (so the cache holds its creation's tombstone)
    order = make_order(lines={product.sku: 5})
    token = read_route_enter(ReadRoute(REPLICA, OK))
    try:
        # when: a read served by the replica fills the cache
        cache_fill("order", str(order.pk), 1, b'{"from": "replica"}')
    finally:
        read_route_leave(token)
    after_replica = cache_read("order", str(order.pk))
    cache_fill("order", str(order.pk), 1, b'{"from": "primary"}')

    # then: only the primary's read is kept
    assert after_replica.status == "miss"
    assert cache_read("order", str(order.pk)).body == b'{"from": "primary"}'
