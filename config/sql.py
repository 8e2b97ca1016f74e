"""Small helpers for the few statements written in plain SQL (the hot order paths)."""

from django.db import DEFAULT_DB_ALIAS, connections

from config.replica import read_alias


def fetch_all(sql: str, params: list) -> list[tuple]:
    """The rows of one statement: on the read replica inside a read request routed there
    (config.replica.read_alias, as the ORM's reads), else, as always, on the primary."""
    with connections[read_alias() or DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
