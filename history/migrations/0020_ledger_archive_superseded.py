"""A ledger month may have several archives registered before one is dropped: when the
partition changed after an archive was registered (a backdated row arrived), the drop
function refuses it and the next ledger_archive run archives the month again. Only one
archive per month may be out of the database (dropped and not restored)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('history', '0019_outbox_trace_context'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='ledgerarchive',
            name='ledger_archive_one_per_month',
        ),
        migrations.AddConstraint(
            model_name='ledgerarchive',
            constraint=models.UniqueConstraint(condition=models.Q(('dropped_at__isnull', False), ('restored_at__isnull', True)), fields=('ledger', 'month'), name='ledger_archive_one_per_month'),
        ),
    ]
