"""Reason codes, hash chains and seals (issue 11).

Existing ledger rows get a reason code (`system` for the system's changes, `cycle_count`
for stock counts, `unspecified` for the rest: nobody gave one) and their chain hashes,
computed exactly as the recorder computes them for new rows (history.chain, version 1).
Both are written by UPDATE with the append-only triggers switched off for the length of
this migration, which runs as the tables' owner; the triggers are back before it commits.
The orders' and stock levels' chain heads are set to their last rows' hashes.

The seal and access-log tables are append-only like the ledgers."""

from django.db import migrations, models

from history.chain import (
    GENESIS,
    ORDER_FIELDS,
    STOCK_FIELDS,
    order_entry_hash,
    stock_entry_hash,
)

ORDER_LEDGER = "history_orderledgerentry"
STOCK_LEDGER = "history_stockledgerentry"
BATCH = 5000


def _chain(cursor, table, key, fields, entry_hash, head_table, head_key):
    columns = ", ".join(("id", *key, *fields))
    named = cursor.connection.cursor(name=f"chain_{table}")
    named.itersize = BATCH
    named.execute(f"SELECT {columns} FROM {table} ORDER BY {', '.join(key)}, id")
    heads: dict = {}
    batch: list = []

    def flush():
        if batch:
            cursor.execute(
                f"UPDATE {table} AS t SET prev_hash = v.p, hash = v.h "
                "FROM unnest(%s::bigint[], %s::bytea[], %s::bytea[]) AS v(id, p, h) "
                "WHERE t.id = v.id",
                [[b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch]],
            )
            batch.clear()

    for row in named:
        row_id, aggregate, values = row[0], row[1 : 1 + len(key)], row[1 + len(key) :]
        prev = heads.get(aggregate, GENESIS)
        digest = entry_hash(prev, dict(zip(fields, values, strict=True)))
        heads[aggregate] = digest
        batch.append((row_id, prev, digest))
        if len(batch) >= BATCH:
            flush()
    flush()
    named.close()
    items = list(heads.items())
    for start in range(0, len(items), BATCH):
        chunk = items[start : start + BATCH]
        where = " AND ".join(f"t.{column} = v.k{n}" for n, column in enumerate(head_key))
        unnest = ", ".join("%s::bigint[]" for _ in head_key)
        names = ", ".join(f"k{n}" for n in range(len(head_key)))
        cursor.execute(
            f"UPDATE {head_table} AS t SET ledger_head = v.h "
            f"FROM unnest({unnest}, %s::bytea[]) AS v({names}, h) WHERE {where}",
            [*([k[n] for k, _ in chunk] for n in range(len(head_key))), [h for _, h in chunk]],
        )


def backfill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for table in (ORDER_LEDGER, STOCK_LEDGER):
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
        cursor.execute(f"UPDATE {ORDER_LEDGER} SET reason_code = 'system' WHERE source = 'system'")
        cursor.execute(
            f"UPDATE {STOCK_LEDGER} SET reason_code = CASE WHEN source = 'system' THEN 'system' "
            "ELSE 'cycle_count' END WHERE source = 'system' OR movement = 'count'"
        )
        _chain(
            cursor, ORDER_LEDGER, ("order_id",), ORDER_FIELDS, order_entry_hash,
            "orders_order", ("id",),
        )  # fmt: skip
        _chain(
            cursor, STOCK_LEDGER, ("product_id", "location_id"), STOCK_FIELDS, stock_entry_hash,
            "inventory_stocklevel", ("product_id", "location_id"),
        )  # fmt: skip
        for table in (ORDER_LEDGER, STOCK_LEDGER):
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")


def _hash_fields():
    return [
        ("prev_hash", models.BinaryField(default=b"", editable=False, max_length=32)),
        ("hash", models.BinaryField(default=b"", editable=False, max_length=32)),
    ]


APPEND_ONLY = ("history_ledgerseal", "history_accesslogentry")
HASHES_ARE_32_BYTES = [
    f"ALTER TABLE {table} ADD CONSTRAINT {table[8:]}_hashes_32_bytes "
    "CHECK (octet_length(prev_hash) = 32 AND octet_length(hash) = 32)"
    for table in (ORDER_LEDGER, STOCK_LEDGER)
]
SEAL_SIZES = [
    "ALTER TABLE history_ledgerseal ADD CONSTRAINT seal_sizes CHECK (octet_length(root) = 32 "
    "AND octet_length(previous_hash) = 32 AND octet_length(seal_hash) = 32 "
    "AND octet_length(signature) = 64 AND octet_length(frontier) % 32 = 0)"
]
TRIGGERS = [
    statement
    for table in APPEND_ONLY
    for statement in (
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()",
    )
]


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0012_ledgers_refuse_truncate"),
        ("orders", "0007_order_ledger_head"),
        ("inventory", "0004_stocklevel_ledger_head"),
    ]

    operations = [
        *(
            migrations.AddField(
                model_name=model,
                name="reason_code",
                field=models.CharField(default="unspecified", max_length=32),
                preserve_default=False,
            )
            for model in ("orderledgerentry", "stockledgerentry")
        ),
        *(
            migrations.AddField(model_name=model, name=name, field=field, preserve_default=False)
            for model in ("orderledgerentry", "stockledgerentry")
            for name, field in _hash_fields()
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunSQL(HASHES_ARE_32_BYTES, migrations.RunSQL.noop),
        migrations.CreateModel(
            name="LedgerSeal",
            fields=[
                ("number", models.PositiveBigIntegerField(primary_key=True, serialize=False)),
                (
                    "tree_size",
                    models.PositiveBigIntegerField(
                        help_text="Rows sealed by this seal and before."
                    ),
                ),
                ("batch_size", models.PositiveBigIntegerField(help_text="Rows this seal added.")),
                ("root", models.BinaryField(max_length=32)),
                ("frontier", models.BinaryField()),
                ("previous_hash", models.BinaryField(max_length=32)),
                ("seal_hash", models.BinaryField(max_length=32, unique=True)),
                ("sealed_at", models.DateTimeField()),
                (
                    "snapshot",
                    models.TextField(
                        help_text="The pg_snapshot whose committed rows it covers."
                    ),
                ),
                ("snapshot_xmax", models.BigIntegerField()),
                (
                    "key_id",
                    models.CharField(
                        help_text="SHA-256 of the signing public key.", max_length=64
                    ),
                ),
                ("signature", models.BinaryField(max_length=64)),
            ],
            options={
                "ordering": ["number"],
                "indexes": [
                    models.Index(fields=["snapshot_xmax"], name="seal_snapshot_xmax_idx")
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("tree_size__gte", models.F("batch_size"))),
                        name="seal_tree_holds_batch",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="AccessLogEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("actor", models.CharField(max_length=150)),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("export_adjustments", "Export of the adjustments feed"),
                            ("export_order_history", "Export of an order's history"),
                            ("export_stock_history", "Export of a stock history"),
                            ("proof_order", "Proof of an order's chain"),
                            ("proof_stock", "Proof of a stock level's chain"),
                        ],
                        max_length=32,
                    ),
                ),
                ("target", models.CharField(blank=True, max_length=200)),
                ("filters", models.JSONField(blank=True, default=dict)),
                ("rows", models.PositiveBigIntegerField(blank=True, null=True)),
                ("occurred_at", models.DateTimeField(db_index=True)),
                ("correlation_id", models.CharField(blank=True, max_length=64)),
            ],
            options={
                "verbose_name": "access log entry",
                "verbose_name_plural": "access log",
                "ordering": ["-id"],
            },
        ),
        migrations.RunSQL(SEAL_SIZES + TRIGGERS, migrations.RunSQL.noop),
    ]
