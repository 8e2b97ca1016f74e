"""Shared by the migrations that add models the roles must see (see config.roles)."""

from django.contrib.auth.management import create_permissions

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
