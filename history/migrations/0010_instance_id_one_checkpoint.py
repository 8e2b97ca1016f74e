"""The database's instance id (part of every cache key), created with a random value;
and the projector keeps one checkpoint, the database snapshot (no id position)."""

import uuid

from django.db import migrations, models


def create_instance_id(apps, schema_editor):
    apps.get_model("history", "Instance").objects.create(pk=1, instance_id=uuid.uuid4())


class Migration(migrations.Migration):

    dependencies = [
        ('history', '0009_outbox_published_is_settled'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='projectioncheckpoint',
            name='position',
        ),
        migrations.CreateModel(
            name='Instance',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ('instance_id', models.UUIDField(default=uuid.uuid4)),
                ('rotated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'constraints': [models.CheckConstraint(condition=models.Q(('id', 1)), name='instance_one_row')],
            },
        ),
        migrations.RunPython(create_instance_id, migrations.RunPython.noop),
    ]
