"""Small helpers for the few statements written in plain SQL (the hot order paths)."""

from django.db import connection


def fetch_all(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
