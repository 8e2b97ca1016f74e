"""Lets every role see the snapshot tables and projection checkpoints added in 0003."""

from django.db import migrations

from history.migrations._roles import update_roles


class Migration(migrations.Migration):
    dependencies = [("history", "0003_relay_and_projections"), ("orders", "0002_roles")]
    operations = [migrations.RunPython(update_roles, migrations.RunPython.noop)]
