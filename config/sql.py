"""Small helpers for the few statements written in plain SQL (the hot order paths)."""

from collections.abc import Iterable

from django.db import connection


def one_of(column: str, values: Iterable) -> tuple[str, list]:
    """(`column` is one of `values`, its parameters). On PostgreSQL the values go as one
    array parameter, so the statement text stays the same and psycopg converts one
    parameter instead of one per value; elsewhere, one placeholder per value."""
    values = list(values)
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [values]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


def fetch_all(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
