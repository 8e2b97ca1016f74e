"""Integrators use the API only, whose checks are roles, not model permissions: their group
loses the view, add and change permissions it had (see config.roles), so that `is_staff`
set by mistake does not open the admin to them."""

from django.db import migrations

from config.roles import roles_migrate


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0005_orderline_product_related_name"),
        ("inventory", "0003_product_version"),
        ("history", "0010_instance_id_one_checkpoint"),
    ]
    operations = [migrations.RunPython(roles_migrate, migrations.RunPython.noop)]
