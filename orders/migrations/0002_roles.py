"""Creates the three roles as groups with their model permissions.

- order_staff: edit orders, lines, customers and products in the admin and the API.
- integrator: API read and write; no admin (issue_token leaves them non-staff).
- auditor: read-only everywhere, including the ledger and the outbox.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

MODELS = {
    "orders": ["order", "orderline", "customer"],
    "inventory": ["product"],
    "history": ["orderledgerentry", "outboxevent"],
}
STAFF_EDITS = {"order", "orderline", "customer", "product"}


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perms(actions, models):
        return Permission.objects.filter(
            content_type__app_label__in=MODELS,
            content_type__model__in=models,
            codename__in=[f"{a}_{m}" for a in actions for m in models],
        )

    every_model = [m for models in MODELS.values() for m in models]
    staff, _ = Group.objects.get_or_create(name="order_staff")
    staff.permissions.set(
        list(perms(["view"], every_model)) + list(perms(["add", "change"], STAFF_EDITS))
    )
    integrator, _ = Group.objects.get_or_create(name="integrator")
    integrator.permissions.set(
        list(perms(["view"], every_model)) + list(perms(["add", "change"], STAFF_EDITS))
    )
    auditor, _ = Group.objects.get_or_create(name="auditor")
    auditor.permissions.set(perms(["view"], every_model))


def delete_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["order_staff", "integrator", "auditor"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0001_initial"),
        ("inventory", "0001_initial"),
        ("history", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, delete_roles)]
