"""Lets every role see the snapshot tables and projection checkpoints added in 0003."""

from django.db import migrations

from config.roles import roles_migrate


class Migration(migrations.Migration):
    dependencies = [("history", "0003_relay_and_projections"), ("orders", "0002_roles")]
    operations = [migrations.RunPython(roles_migrate, migrations.RunPython.noop)]
