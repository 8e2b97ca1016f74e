"""The tests run as the application does: as the least-privileged runtime role.

pytest-django creates and migrates each test database as the owner (TEST_DATABASE_URL's
user); `migrate` grants the runtime role its privileges (history.apps); then every test
connection switches to that role. The one thing the tests do that the application never
does is empty every table between transactional tests (Django's flush): that runs as the
owner, with triggers off (session_replication_role, a superuser's setting), because the
ledgers refuse TRUNCATE."""

import contextlib

import psycopg
from django.conf import settings
from django.db import connections
from django.db.backends.postgresql.operations import DatabaseOperations
from psycopg import sql


def runtime_role_ensure(owner_dsn: dict, role: str) -> None:
    """Create the login role if it does not exist yet (roles belong to the whole server, so
    concurrent runs may race to create it)."""
    with psycopg.connect(**owner_dsn, dbname="postgres", autocommit=True) as owner:
        if owner.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
            return
        with contextlib.suppress(psycopg.errors.DuplicateObject):
            owner.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))


_owner: dict = {}


def owner_dsn() -> dict:
    """How to connect as the owner (who created the test database), without a database
    name: for the few tests that must act as the owner or on other databases."""
    if _owner:
        return dict(_owner)
    database = connections["default"].settings_dict
    return {
        "host": database["HOST"] or "127.0.0.1",
        "port": database["PORT"] or 5432,
        "user": database["USER"],
        "password": database["PASSWORD"] or None,
    }


def remember_owner() -> dict:
    _owner.update(owner_dsn())
    return dict(_owner)


def connect_as(user: str) -> None:
    """Every connection made from now on (each thread's too) logs in as `user`."""
    for database in (settings.DATABASES["default"], connections.settings["default"]):
        database["USER"] = user
    connections["default"].settings_dict["USER"] = user
    connections["default"].close()


@contextlib.contextmanager
def acting_as_owner():
    """Run the block's queries as the owner, as `migrate` does (needs a transactional test:
    the connection is replaced)."""
    runtime = connections["default"].settings_dict["USER"]
    connect_as(owner_dsn()["user"])
    try:
        yield
    finally:
        connect_as(runtime)


def flush_as_owner(owner: dict, database_name: str) -> None:
    """Make Django's flush (TRUNCATE of every table) run as the owner, triggers off."""

    def execute_sql_flush(self, sql_list):
        with psycopg.connect(**owner, dbname=database_name, autocommit=True) as connection:
            connection.execute("SET session_replication_role = replica")
            for statement in sql_list:
                connection.execute(statement)

    DatabaseOperations.execute_sql_flush = execute_sql_flush
