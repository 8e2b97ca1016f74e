"""config/db_router.py, installed as it is with DATABASE_REPLICA_URL: which alias Django's
own router picks for the ORM's reads and writes. (Only aliases are asked for here: the
test settings have no replica to connect to; test_replica_standby.py has one.)"""

import pytest
from django.db import DEFAULT_DB_ALIAS, router, transaction

from config.db_router import ReplicaRouter
from config.replica import BEHIND_CLIENT, OK, REPLICA, ReadRoute, read_route_enter, read_route_leave
from orders.models import Order


@pytest.fixture
def routed(settings):
    settings.DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]

    def enter(route: ReadRoute):
        tokens.append(read_route_enter(route))

    tokens = []
    yield enter
    for token in reversed(tokens):
        read_route_leave(token)


def test_outside_a_replica_read_everything_uses_the_primary(routed):
    assert Order.objects.all().db == DEFAULT_DB_ALIAS
    assert router.db_for_read(Order) == DEFAULT_DB_ALIAS


def test_a_replica_read_reads_the_replica_and_still_writes_the_primary(routed):
    # given
    routed(ReadRoute(REPLICA, OK))

    # then
    assert Order.objects.all().db == REPLICA
    assert Order.objects.select_for_update().db == DEFAULT_DB_ALIAS
    assert router.db_for_write(Order) == DEFAULT_DB_ALIAS


def test_a_read_routed_to_the_primary_reads_the_primary(routed):
    routed(ReadRoute(DEFAULT_DB_ALIAS, BEHIND_CLIENT))

    assert Order.objects.all().db == DEFAULT_DB_ALIAS


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_reads_stay_on_the_primary(routed):
    # given
    routed(ReadRoute(REPLICA, OK))

    # when
    with transaction.atomic():
        inside = Order.objects.all().db

    # then: a transaction must read its own writes and what it locked
    assert inside == DEFAULT_DB_ALIAS
    assert Order.objects.all().db == REPLICA


def test_migrations_run_on_the_primary_only():
    assert ReplicaRouter().allow_migrate(DEFAULT_DB_ALIAS, "orders") is True
    assert ReplicaRouter().allow_migrate(REPLICA, "orders") is False


def test_a_row_read_from_the_replica_may_be_related_to_one_of_the_primary():
    on_replica, on_primary = Order(), Order()
    on_replica._state.db, on_primary._state.db = REPLICA, DEFAULT_DB_ALIAS

    assert ReplicaRouter().allow_relation(on_replica, on_primary) is True
