"""rest_framework.authtoken is no longer installed: its tokens were stored in plain text,
never expired and were one per user. They are not carried over (each user issues new ones:
config.tokens, `manage.py issue_token`, POST /api/v1/tokens/). Its table is dropped, so no
usable token is left in the database, with its permissions and its migration records, so
that the app could be installed again from scratch. Not reversible: the tokens are gone."""

from django.db import migrations


def forget_authtoken(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS authtoken_token")
        cursor.execute("DELETE FROM django_migrations WHERE app = 'authtoken'")
    # Its permissions (and the roles' links to them) go with their content types.
    apps.get_model("contenttypes", "ContentType").objects.filter(app_label="authtoken").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("config", "0002_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forget_authtoken, migrations.RunPython.noop)]
