"""The outbox rows carry the W3C trace context of the span that recorded them (issue 14):
`traceparent` and `tracestate`, empty when tracing is off. Added on the partitioned parent,
so every monthly partition (and the DEFAULT one) gets them; the database default '' keeps
the existing rows and any INSERT that names no trace context valid, without a rewrite."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0018_ledger_archive"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxevent",
            name="traceparent",
            field=models.CharField(blank=True, db_default="", default="", max_length=55),
        ),
        migrations.AddField(
            model_name="outboxevent",
            name="tracestate",
            field=models.TextField(blank=True, db_default="", default=""),
        ),
    ]
