"""The order ledger, the stock ledger and the outbox become tables range-partitioned by month
on their time column (occurred_at, created_at), with the existing rows moved in.

Each table is renamed, a partitioned table is created in its place (same columns, defaults
and checks), partitions are made for every month from the oldest row's to three months
ahead plus a DEFAULT partition, and the rows are copied in id order. The old table goes,
with its identity; `id` is then served by a sequence owned by the column (PostgreSQL 15
has no identity on a partitioned table), set to where the identity stood, so ids keep
growing in commit order (the relay's dispatch order, the seals' order). Then the indexes
(the same definitions, now per partition), the foreign keys, the append-only row trigger
(cloned onto every partition, present and future) and the TRUNCATE trigger (a statement
trigger is not cloned: history_partition_create adds it to each ledger partition) come back.
Copying rather than attaching the old table as one big partition keeps every month its own
partition, so old months can be dropped whole; inserts fire no append-only trigger.

A unique index on a partitioned table must contain the partition key, so:
- the primary key becomes (id, time); `id` alone stays Django's primary key (the sequence
  makes it unique in practice, and nothing else writes ids);
- (order, version, product) and (product, location, version) gain occurred_at. They stay
  unique across months because a version is only written under the row lock of its order or
  stock level, which the recorder bumps in the same statement (version N+1 follows N, never
  twice), every row of one command has the command's one occurred_at, and the hash chain
  links each row to its predecessor (verify_ledger names a duplicate);
- the outbox's event_id is unique with created_at: event ids are uuid4s made by the
  recorder (history.events), one per event, and never written twice; a global registry
  table would cost one more index insert per event on the write path for a collision
  uuid4 does not have.

Partitions are created by history_partitions_ensure (SECURITY DEFINER, owned by the owner
who runs this migration; the runtime role may only EXECUTE it: history.services), run by
the beat ahead of time. The DEFAULT partition catches a row for a month with no partition
(the beat stopped for months, a backdated import), so a write never fails for lack of one;
creating that month's partition later is then refused while the default holds its rows
(the function warns and skips it), and /readyz fails a month ahead when the next month's
partition is missing."""

import uuid

from django.db import migrations, models

ORDER_LEDGER = "history_orderledgerentry"
STOCK_LEDGER = "history_stockledgerentry"
OUTBOX = "history_outboxevent"
LEDGERS = (ORDER_LEDGER, STOCK_LEDGER)

# table -> (partition key, primary key, {unique constraint: columns}); the other indexes
# keep their definitions.
TABLES = {
    ORDER_LEDGER: (
        "occurred_at",
        {"ledger_one_row_per_line_version": "order_id, version, product_id, occurred_at"},
    ),
    STOCK_LEDGER: (
        "occurred_at",
        {"stockledger_one_row_per_version": "product_id, location_id, version, occurred_at"},
    ),
    OUTBOX: ("created_at", {"outbox_event_id_unique": "event_id, created_at"}),
}

FUNCTIONS = """
CREATE OR REPLACE FUNCTION history_partition_create(parent text, month date)
RETURNS boolean LANGUAGE plpgsql
SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    name text := parent || '_p' || to_char(month, 'YYYYMM');
    lower timestamptz := date_trunc('month', month)::timestamptz;
BEGIN
    IF parent NOT IN ('history_orderledgerentry', 'history_stockledgerentry',
                      'history_outboxevent') THEN
        RAISE EXCEPTION 'not a partitioned history table: %', parent;
    END IF;
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   name, parent, lower, lower + interval '1 month');
    IF parent <> 'history_outboxevent' THEN
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()',
                       name || '_no_truncate', name);
    END IF;
    RETURN true;
END $$;
REVOKE ALL ON FUNCTION history_partition_create(text, date) FROM PUBLIC;

CREATE OR REPLACE FUNCTION history_partitions_ensure(months_ahead integer DEFAULT 3,
                                                     since timestamptz DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET TimeZone = 'UTC' SET lock_timeout = '5s' AS $$
DECLARE
    first date := date_trunc('month', least(coalesce(since, now()), now()))::date;
    last date := (date_trunc('month', now()) + make_interval(months => months_ahead))::date;
    parent text;
    month date;
    made integer := 0;
BEGIN
    IF months_ahead NOT BETWEEN 0 AND 24 OR first < last - interval '10 years' THEN
        RAISE EXCEPTION 'partitions from % to % months ahead: out of bounds', first,
            months_ahead;
    END IF;
    FOREACH parent IN ARRAY ARRAY['history_orderledgerentry', 'history_stockledgerentry',
                                  'history_outboxevent'] LOOP
        month := first;
        WHILE month <= last LOOP
            BEGIN
                IF history_partition_create(parent, month) THEN
                    made := made + 1;
                END IF;
            EXCEPTION WHEN check_violation OR lock_not_available THEN
                RAISE WARNING 'partition % of % not created: %', to_char(month, 'YYYY-MM'),
                    parent, SQLERRM;
            END;
            month := month + interval '1 month';
        END LOOP;
    END LOOP;
    RETURN made;
END $$;
REVOKE ALL ON FUNCTION history_partitions_ensure(integer, timestamptz) FROM PUBLIC;

CREATE OR REPLACE FUNCTION history_outbox_partitions_drop(cutoff timestamptz)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET TimeZone = 'UTC' SET lock_timeout = '5s' AS $$
DECLARE
    part text;
    live boolean;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'history_outboxevent'::regclass
          AND c.relname ~ '^history_outboxevent_p[0-9]{6}$'
          AND to_date(right(c.relname, 6), 'YYYYMM') + interval '1 month'
              <= least(cutoff, now())
        ORDER BY c.relname
    LOOP
        EXECUTE format('LOCK TABLE %I IN SHARE ROW EXCLUSIVE MODE', part);
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I '
                       'WHERE published_at IS NULL OR published_at >= $1)', part)
            INTO live USING cutoff;
        CONTINUE WHEN live;
        EXECUTE format('ALTER TABLE history_outboxevent DETACH PARTITION %I', part);
        EXECUTE format('DROP TABLE %I', part);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;
REVOKE ALL ON FUNCTION history_outbox_partitions_drop(timestamptz) FROM PUBLIC;
"""


def _fetch(cursor, sql, params=()):
    cursor.execute(sql, params)
    return cursor.fetchall()


def partition(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(FUNCTIONS)
        oldest = None
        for table, (key, _) in TABLES.items():
            old = f"{table}_unpartitioned"
            cursor.execute(f"ALTER TABLE {table} RENAME TO {old}")
            cursor.execute(
                f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
                f"PARTITION BY RANGE ({key})"
            )
            cursor.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
            if table in LEDGERS:
                cursor.execute(
                    f"CREATE TRIGGER {table}_default_no_truncate BEFORE TRUNCATE ON "
                    f"{table}_default FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()"
                )
            (first,) = _fetch(cursor, f"SELECT min({key}) FROM {old}")[0]
            oldest = min(filter(None, (oldest, first)), default=None)
        cursor.execute("SELECT history_partitions_ensure(3, %s)", [oldest])
        for table, (key, uniques) in TABLES.items():
            old = f"{table}_unpartitioned"
            cursor.execute(f"INSERT INTO {table} SELECT * FROM {old} ORDER BY id")
            ((last_value, is_called),) = _fetch(
                cursor, f"SELECT last_value, is_called FROM {table}_id_seq"
            )
            indexes = _fetch(
                cursor,
                "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = "
                "%s::regclass AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                [old],
            )
            foreign_keys = _fetch(
                cursor,
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'f'",
                [old],
            )
            cursor.execute(f"DROP TABLE {old}")
            cursor.execute(f"CREATE SEQUENCE {table}_id_seq OWNED BY {table}.id")
            cursor.execute(
                f"SELECT setval('{table}_id_seq', %s, %s)", [last_value, is_called]
            )
            cursor.execute(
                f"ALTER TABLE {table} ALTER id SET DEFAULT nextval('{table}_id_seq')"
            )
            cursor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id, {key})"
            )
            for name, columns in uniques.items():
                cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE ({columns})")
            for (definition,) in indexes:
                cursor.execute(definition.replace(f" ON public.{old} ", f" ON public.{table} "))
            for name, definition in foreign_keys:
                cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
            if table in LEDGERS:
                cursor.execute(
                    f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()"
                )
                cursor.execute(
                    f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_reject_change()"
                )
            cursor.execute(f"ANALYZE {table}")


class Migration(migrations.Migration):
    atomic = True

    dependencies = [("history", "0016_daily_change_counts")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(partition)],
            state_operations=[
                migrations.RemoveConstraint("orderledgerentry", "ledger_one_row_per_line_version"),
                migrations.AddConstraint(
                    "orderledgerentry",
                    models.UniqueConstraint(
                        fields=["order", "version", "product", "occurred_at"],
                        name="ledger_one_row_per_line_version",
                    ),
                ),
                migrations.RemoveConstraint("stockledgerentry", "stockledger_one_row_per_version"),
                migrations.AddConstraint(
                    "stockledgerentry",
                    models.UniqueConstraint(
                        fields=["product", "location", "version", "occurred_at"],
                        name="stockledger_one_row_per_version",
                    ),
                ),
                migrations.AlterField(
                    "outboxevent",
                    "event_id",
                    models.UUIDField(default=uuid.uuid4, editable=False),
                ),
                migrations.AddConstraint(
                    "outboxevent",
                    models.UniqueConstraint(
                        fields=["event_id", "created_at"], name="outbox_event_id_unique"
                    ),
                ),
            ],
        ),
    ]
