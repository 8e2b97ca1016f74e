"""Creates the three roles as groups with their model permissions (see config.roles).

- order_staff: edit orders, lines, customers and products in the admin and the API.
- integrator: API read and write; no admin (issue_token leaves them non-staff).
- auditor: read-only everywhere, including the ledger and the outbox.
"""

from django.db import migrations

from config.roles import Role, roles_migrate


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
    operations = [migrations.RunPython(roles_migrate, delete_roles)]
