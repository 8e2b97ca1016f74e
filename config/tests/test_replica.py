"""config/replica.py without a replica: LSNs against PostgreSQL's own pg_lsn, what a check of
the replica concludes, where a read goes, the users' LSNs in Redis, and that nothing changes
while DATABASE_REPLICA_URL is unset. A real hot standby: test_replica_standby.py."""

import pytest
from django.core.cache import cache
from django.core.exceptions import MiddlewareNotUsed
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django_redis import get_redis_connection

from config import replica
from config.replica import (
    BEHIND_CLIENT,
    CLIENT_UNKNOWN,
    DOWN,
    LAGGING,
    NOT_STANDBY,
    OK,
    REPLICA,
    CommitLsnMiddleware,
    ReadRoute,
    ReplicaStatus,
    ReplicaTracker,
    client_lsn,
    client_lsn_remember,
    commit_lsn,
    lsn_format,
    lsn_parse,
    read_alias,
    read_route,
    read_route_choose,
    read_route_enter,
    read_route_leave,
)

LSNS = ["0/0", "0/1", "0/16B3748", "0/FFFFFFFF", "1/0", "16/B374D848", "FFFFFFFF/FFFFFFFF"]


@pytest.mark.django_db
def test_lsns_parse_and_order_as_postgresql_pg_lsn():
    # when: PostgreSQL reads each as a pg_lsn, and gives its distance from 0/0 and its text
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (lsn::pg_lsn - '0/0'::pg_lsn)::numeric, lsn::pg_lsn::text "
            "FROM unnest(%s::text[]) AS lsn",
            [LSNS],
        )
        postgresql = cursor.fetchall()

    # then
    assert [lsn_parse(lsn) for lsn in LSNS] == [int(offset) for offset, _ in postgresql]
    assert [lsn_format(lsn_parse(lsn)) for lsn in LSNS] == [text for _, text in postgresql]
    assert sorted(LSNS, key=lsn_parse) == LSNS


@pytest.mark.parametrize(
    "text", ["", "16", "0/", "/1", "G/1", "1/123456789", " 0/1", "0/1;", "-1/0", "0/1\n"]
)
def test_anything_else_is_not_an_lsn(text):
    with pytest.raises(ValueError):
        lsn_parse(text)


@pytest.mark.django_db(transaction=True)
def test_the_commit_lsn_is_past_a_committed_write(make_order):
    # given
    before = commit_lsn()

    # when
    make_order()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_flush_lsn()::text")
        flushed = lsn_parse(cursor.fetchone()[0])  # past the commit record: it is flushed
    after = commit_lsn()

    # then
    assert before < flushed <= after


# --- What a check concludes ---------------------------------------------------------------------


def observe(tracker, *, started=100.0, now=100.1, primary, replay, age=None, recovery=True):
    return tracker.observe(
        started=started,
        now=now,
        primary_lsn=primary,
        in_recovery=recovery,
        replay_lsn=replay,
        replay_age=age,
    )


@pytest.fixture
def max_lag(settings):
    settings.REPLICA_MAX_LAG_SECONDS = 10.0
    return 10.0


def test_a_replica_at_the_primarys_position_is_ok_with_no_lag(max_lag):
    status = observe(ReplicaTracker(), primary=5000, replay=5000, age=3600.0)

    assert (status.state, status.lag_bytes, status.lag_seconds) == (OK, 0, 0.0)
    assert status.replay_lsn == 5000


def test_after_a_quiet_hour_the_lag_counts_from_when_it_was_last_caught_up(max_lag):
    # given: caught up at t=100, and no transaction for an hour
    tracker = ReplicaTracker()
    observe(tracker, started=100.0, primary=5000, replay=5000, age=3600.0)

    # when: a write it has not replayed yet, seen 0.5 s later
    status = observe(tracker, started=100.5, now=100.6, primary=5200, replay=5000, age=3600.5)

    # then: 0.6 s at most, not an hour
    assert status.state == OK
    assert status.lag_bytes == 200
    assert status.lag_seconds == pytest.approx(0.6)


def test_a_replica_never_seen_caught_up_lags_by_the_age_of_its_last_transaction(max_lag):
    status = observe(ReplicaTracker(), primary=5200, replay=5000, age=12.0)

    assert (status.state, status.lag_seconds) == (LAGGING, 12.0)


def test_a_replica_behind_with_no_bound_on_its_lag_counts_as_lagging(max_lag):
    # a standby just started, that has replayed no transaction yet
    status = observe(ReplicaTracker(), primary=5200, replay=5000, age=None)

    assert (status.state, status.lag_seconds) == (LAGGING, None)


def test_replay_going_back_forgets_when_it_was_caught_up(max_lag):
    # given: caught up at 5000, long ago
    tracker = ReplicaTracker()
    observe(tracker, started=100.0, primary=5000, replay=5000)

    # when: another server answers now, further back
    status = observe(tracker, started=200.0, now=200.0, primary=5200, replay=4000, age=50.0)

    # then: its own last transaction counts, not the other one's catching up
    assert (status.state, status.lag_seconds) == (LAGGING, 50.0)


@pytest.mark.django_db
def test_a_server_that_is_not_in_recovery_is_not_a_standby(max_lag):
    # given: what the check asks, asked of the test database, which is a primary
    with connection.cursor() as cursor:
        cursor.execute(replica._CHECK)
        in_recovery, replay, age = cursor.fetchone()

    # when
    status = observe(ReplicaTracker(), primary=5000, replay=replay, age=age, recovery=in_recovery)

    # then: a promoted standby, or a primary named by mistake, gets no reads
    assert (in_recovery, replay) == (False, None)
    assert status.state == NOT_STANDBY


# --- Where a read goes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "min_lsn", "route"),
    [
        (ReplicaStatus(OK, replay_lsn=5000), 0, ReadRoute(REPLICA, OK)),
        (ReplicaStatus(OK, replay_lsn=5000), 5000, ReadRoute(REPLICA, OK)),
        (ReplicaStatus(OK, replay_lsn=5000), 5001, ReadRoute(DEFAULT_DB_ALIAS, BEHIND_CLIENT)),
        (ReplicaStatus(OK, replay_lsn=5000), None, ReadRoute(DEFAULT_DB_ALIAS, CLIENT_UNKNOWN)),
        (ReplicaStatus(LAGGING, replay_lsn=5000), 0, ReadRoute(DEFAULT_DB_ALIAS, LAGGING)),
        (ReplicaStatus(DOWN), 0, ReadRoute(DEFAULT_DB_ALIAS, DOWN)),
        (ReplicaStatus(NOT_STANDBY), 0, ReadRoute(DEFAULT_DB_ALIAS, NOT_STANDBY)),
    ],
)
def test_a_read_goes_to_the_replica_only_if_it_is_healthy_and_has_replayed_the_clients_lsn(
    status, min_lsn, route
):
    assert read_route_choose(status=status, min_lsn=min_lsn) == route


@pytest.mark.django_db(transaction=True)
def test_reads_go_to_the_replica_only_inside_a_replica_route_and_outside_transactions():
    # given
    outside = read_alias()
    token = read_route_enter(ReadRoute(REPLICA, OK))
    try:
        # when
        inside = read_alias()
        with transaction.atomic():
            in_a_transaction = read_alias()
    finally:
        read_route_leave(token)

    # then
    assert (outside, inside, in_a_transaction) == (None, REPLICA, None)
    assert read_alias() is None


def test_a_route_to_the_primary_reads_the_primary():
    token = read_route_enter(ReadRoute(DEFAULT_DB_ALIAS, BEHIND_CLIENT))
    try:
        assert read_alias() is None
    finally:
        read_route_leave(token)


# --- What each user last wrote, in this run's Redis -------------------------------------------


@pytest.fixture
def window(settings):
    """A short window; this run's remembered LSNs deleted before and after."""
    settings.REPLICA_READ_YOUR_WRITES_SECONDS = 5.0
    cache.delete_pattern(replica._memory_key("*"))
    replica._breaker.close()
    yield 5.0
    replica._breaker.close()
    cache.delete_pattern(replica._memory_key("*"))


def test_the_highest_lsn_of_a_users_writes_is_remembered(window):
    # when: two writes whose responses finish in the other order
    client_lsn_remember(user_id=76, lsn=lsn_parse("1/0"))
    client_lsn_remember(user_id=76, lsn=lsn_parse("0/FFFFFFFF"))

    # then
    assert client_lsn(user_id=76) == lsn_parse("1/0")
    assert client_lsn(user_id=75) == 0


def test_the_lsn_is_remembered_for_the_window(window):
    # when
    client_lsn_remember(user_id=77, lsn=1234)

    # then
    key = cache.make_key(replica._memory_key(77))
    assert 0 < get_redis_connection("default").pttl(key) <= window * 1000


def test_with_redis_unavailable_a_users_lsn_is_unknown_and_reads_go_to_the_primary(window):
    # given: the breaker opened by a failure, as a Redis outage does
    replica._breaker.trip(ConnectionError("Redis went away"))

    # when
    known = client_lsn(user_id=77)

    # then
    assert known is None
    assert read_route_choose(status=ReplicaStatus(OK, replay_lsn=10**9), min_lsn=known) == (
        ReadRoute(DEFAULT_DB_ALIAS, CLIENT_UNKNOWN)
    )


def test_without_redis_the_lsn_is_remembered_in_this_process(window, settings):
    settings.REDIS_URL = ""

    client_lsn_remember(user_id=78, lsn=900)
    client_lsn_remember(user_id=78, lsn=800)

    assert client_lsn(user_id=78) == 900


# --- Without DATABASE_REPLICA_URL nothing changes ---------------------------------------------


def test_without_a_replica_no_route_is_chosen_and_nothing_is_asked():
    # (no database access is allowed here: a query would fail the test)
    assert read_route(user_id=1, min_lsn_header="0/1") is None


def test_without_a_replica_writes_get_no_commit_lsn_middleware():
    with pytest.raises(MiddlewareNotUsed):
        CommitLsnMiddleware(lambda request: None)


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["junk", "", "0/", "1/2/3", "123456789/0"])
def test_without_a_replica_a_malformed_min_lsn_is_still_refused(api, make_order, product, header):
    # given
    order = make_order(lines={product.sku: 5})

    # when
    response = api.get(f"/api/v1/orders/{order.pk}/history/", headers={"X-Min-LSN": header})

    # then: the header means what the OpenAPI schema says, whatever the deployment
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "X-Min-LSN" in response.content.decode()


@pytest.mark.django_db
def test_without_a_replica_reads_and_writes_cost_what_they_did_and_carry_no_headers(
    api, make_order, product, django_assert_num_queries
):
    # given: the token is cached by an earlier request
    warm, order = make_order(lines={product.sku: 1}), make_order(lines={product.sku: 5})
    api.get(f"/api/v1/orders/{warm.pk}/")
    path = f"/api/v1/orders/{order.pk}/"
    body = {"lines": [{"sku": product.sku, "quantity": 6}], "reason": "count"}

    # when: a read (a cache miss) and a history page, with X-Min-LSN headers, and a write;
    # the counts of orders/tests/test_apis.py
    with django_assert_num_queries(1):
        read = api.get(path, headers={"X-Min-LSN": "0/1"})
    with django_assert_num_queries(3):
        history = api.get(f"{path}history/", headers={"X-Min-LSN": "FF/0"})
    with django_assert_num_queries(6):
        written = api.patch(path, body, format="json")

    # then
    assert (read.status_code, history.status_code, written.status_code) == (200, 200, 200)
    for response in (read, history, written):
        assert "X-Commit-LSN" not in response
        assert "X-Read-From" not in response
