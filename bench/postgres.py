"""Connections the benchmarks open beside Django's: to the server's maintenance database
(to create, copy and drop their own databases) or to a benchmark database directly."""

from __future__ import annotations


def connect(db: dict, dbname: str = "postgres", autocommit: bool = True):
    """A psycopg connection with the credentials of `db` (a Django DATABASES entry, or
    django-environ's dict of a URL) to `dbname`."""
    import psycopg

    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        password=db["PASSWORD"] or None,
        dbname=dbname,
        autocommit=autocommit,
    )


def database_ensure(db: dict) -> None:
    """Create `db`'s database unless it exists."""
    with connect(db) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
        if found.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
