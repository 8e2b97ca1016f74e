"""The ledgers refuse TRUNCATE too (a TRUNCATE of orders ... CASCADE used to empty the
order ledger): a statement trigger, beside the row triggers that refuse UPDATE and DELETE.
Only a superuser can get past it (session_replication_role), and the runtime role may
not TRUNCATE at all (history.services.runtime_role_grant)."""

from django.db import migrations

LEDGERS = ("history_orderledgerentry", "history_stockledgerentry")

# ledger_reject_change() was created by 0002_append_only_ledger.
UP = [
    f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()"
    for table in LEDGERS
]
DOWN = [f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}" for table in LEDGERS]


class Migration(migrations.Migration):
    dependencies = [("history", "0011_consumed_event_purge_index")]
    operations = [migrations.RunSQL(UP, DOWN)]
