"""Creates the three roles as groups with their model permissions (see config.roles).

- order_staff: edit orders, lines, customers and products in the admin and the API.
- integrator: API read and write; no admin (issue_token leaves them non-staff).
- auditor: read-only everywhere, including the ledger and the outbox.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from config.roles import Role, roles_ensure


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    roles_ensure(
        group_model=apps.get_model("auth", "Group"),
        permission_model=apps.get_model("auth", "Permission"),
    )


def delete_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(Role)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("inventory", "0001_initial"),
        ("history", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, delete_roles)]
