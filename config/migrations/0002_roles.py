"""The roles get the API tokens' permissions (config.roles.TOKEN_MODELS): staff see and
revoke every user's tokens in the admin, auditors see them."""

from django.db import migrations

from config.roles import roles_migrate


class Migration(migrations.Migration):
    dependencies = [
        ("config", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(roles_migrate, migrations.RunPython.noop)]
