from django.db import migrations, models

import history.chain


class Migration(migrations.Migration):
    dependencies = [("orders", "0006_integrator_api_only")]

    operations = [
        migrations.AddField(
            model_name="order",
            name="ledger_head",
            field=models.BinaryField(
                db_default=history.chain.GENESIS, editable=False, max_length=32
            ),
        ),
    ]
