from django.db import migrations, models

import history.chain


class Migration(migrations.Migration):
    dependencies = [("inventory", "0003_product_version")]

    operations = [
        migrations.AddField(
            model_name="stocklevel",
            name="ledger_head",
            field=models.BinaryField(
                db_default=history.chain.GENESIS, editable=False, max_length=32
            ),
        ),
    ]
