"""Lets every role see the snapshot tables and projection checkpoints added in 0003."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from config.roles import roles_ensure


def update_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    roles_ensure(
        group_model=apps.get_model("auth", "Group"),
        permission_model=apps.get_model("auth", "Permission"),
    )


class Migration(migrations.Migration):
    dependencies = [("history", "0003_relay_and_projections"), ("orders", "0002_roles")]
    operations = [migrations.RunPython(update_roles, migrations.RunPython.noop)]
