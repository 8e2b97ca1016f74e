"""Helpers for the tests of the monthly partitions and the ledger archive."""

from datetime import UTC, datetime

import psycopg
from django.db import connection
from django.utils import timezone

from tests import database


def month_start(offset: int) -> datetime:
    """The first instant (UTC) of the month `offset` months from this one."""
    today = timezone.now().astimezone(UTC)
    index = today.year * 12 + today.month - 1 + offset
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition(table: str, offset: int) -> str:
    return f"{table}_p{month_start(offset):%Y%m}"


def relation_exists(relation: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [relation])
        return cursor.fetchone()[0]


def as_owner(sql: str, params=()) -> list:
    """Run one statement on the test database as its owner (autocommit); its rows, if any."""
    with psycopg.connect(
        **database.owner_dsn(), dbname=connection.settings_dict["NAME"], autocommit=True
    ) as owner:
        cursor = owner.execute(sql, params)
        return cursor.fetchall() if cursor.description else []
