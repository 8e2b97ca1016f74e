"""The database router, installed with DATABASE_REPLICA_URL only (config/replica.py).

A read goes to the replica only where `config.replica.read_alias` says so: inside a read
request routed there, and outside any transaction on the primary. Writes, and so every
SELECT ... FOR UPDATE, go to the primary; migrations run there only (the replica replays
them)."""

from django.db import DEFAULT_DB_ALIAS

from config.replica import REPLICA, read_alias

_SAME_DATA = frozenset({DEFAULT_DB_ALIAS, REPLICA})


class ReplicaRouter:
    def db_for_read(self, model, **hints) -> str | None:
        return read_alias()

    def db_for_write(self, model, **hints) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool | None:
        # A row read from the replica is a row of the primary.
        return True if {obj1._state.db, obj2._state.db} <= _SAME_DATA else None

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS
