"""The order ledger is append-only in the database itself: UPDATE and DELETE are rejected
by a trigger, whatever code (or person with psql) tries them."""

from django.db import migrations

TABLE = "history_orderledgerentry"

UP = [
    """
    CREATE OR REPLACE FUNCTION ledger_reject_change() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'the % table is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql
    """,
    f"""
    CREATE TRIGGER {TABLE}_append_only
        BEFORE UPDATE OR DELETE ON {TABLE}
        FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()
    """,
]
DOWN = [f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}"]


class Migration(migrations.Migration):
    dependencies = [("history", "0001_initial")]
    operations = [migrations.RunSQL(UP, DOWN)]
