"""Staff and auditors may view the access log and the seals in the admin
(config.roles.VISIBLE_MODELS); nobody may add, change or delete either."""

from django.db import migrations

from config.roles import roles_migrate


class Migration(migrations.Migration):
    dependencies = [("history", "0013_reason_codes_hash_chains_seals")]
    operations = [migrations.RunPython(roles_migrate, migrations.RunPython.noop)]
