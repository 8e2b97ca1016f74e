"""The stock ledger is append-only like the order ledger, and every role can see the
inventory models (staff and integrators can change them, through the services)."""

from django.db import migrations

from history.migrations._roles import update_roles

TABLE = "history_stockledgerentry"


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        # ledger_reject_change() was created by 0002_append_only_ledger.
        schema_editor.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change();"
        )
    elif vendor == "sqlite":
        for op in ("UPDATE", "DELETE"):
            schema_editor.execute(
                f"CREATE TRIGGER {TABLE}_no_{op.lower()} BEFORE {op} ON {TABLE} BEGIN "
                f"SELECT RAISE(ABORT, 'the {TABLE} table is append-only: {op} is not allowed'); END;"
            )


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE};")
    elif vendor == "sqlite":
        for op in ("update", "delete"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_{op};")


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0005_stock_ledger"),
        ("inventory", "0002_stock"),
        ("orders", "0003_alter_order_status"),
    ]
    operations = [
        migrations.RunPython(install, uninstall),
        migrations.RunPython(update_roles, migrations.RunPython.noop),
    ]
