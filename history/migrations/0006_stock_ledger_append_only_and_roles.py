"""The stock ledger is append-only like the order ledger, and every role can see the
inventory models (staff and integrators can change them, through the services)."""

from django.db import migrations

from config.roles import roles_migrate

TABLE = "history_stockledgerentry"


# ledger_reject_change() was created by 0002_append_only_ledger.
UP = [
    f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()"
]
DOWN = [f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}"]


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0005_stock_ledger"),
        ("inventory", "0002_stock"),
        ("orders", "0003_alter_order_status"),
    ]
    operations = [
        migrations.RunSQL(UP, DOWN),
        migrations.RunPython(roles_migrate, migrations.RunPython.noop),
    ]
