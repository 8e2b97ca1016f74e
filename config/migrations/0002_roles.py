"""The roles get the API tokens' permissions (config.roles.TOKEN_MODELS): staff see and
revoke every user's tokens in the admin, auditors see them."""

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
    dependencies = [
        ("config", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(update_roles, migrations.RunPython.noop)]
