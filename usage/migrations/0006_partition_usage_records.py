# Raw usage rows partitioned by month on PostgreSQL (issue #8); SQLite is left as it is.

from datetime import UTC, datetime

from django.db import migrations, models
from django.utils import timezone

import usage.models

# --- PostgreSQL: usage_usagerecord becomes PARTITION BY RANGE (created_at) ---------------------------
# One partition per UTC month (usage_usagerecord_y2026m11), created ahead by usage/partitions.py, and a
# DEFAULT partition so that no row is ever refused. Retention then drops whole months (prune_usage).
#
# The table is rebuilt under an ACCESS EXCLUSIVE lock: every row is copied, then the indexes are built
# on the new parent (they cascade to the partitions). Usage writers wait meanwhile; the gateway's records
# stay queued (in memory or in the Redis stream), nothing is lost. Count about a minute per few million
# rows.
#
# PostgreSQL requires unique keys of a partitioned table to contain the partition key: the primary key
# becomes (id, created_at) and request_id's unique key (request_id, created_at), see
# usage.models.UniqueWithPartitionKey. The id keeps coming from one sequence, at the position it had.
# There are no foreign keys to or from this table (key and team are db_constraint=False).

TABLE = "usage_usagerecord"
OLD = "usage_usagerecord_unpartitioned"
PARTITIONED = "usage_usagerecord_partitioned"
DEFAULT_PARTITION = "usage_usagerecord_default"
SEQUENCE = "usage_usagerecord_id_seq"
MONTHS_AHEAD = 3  # as usage.partitions.MONTHS_AHEAD, which keeps them coming afterwards


def _month(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _next_month(month: datetime) -> datetime:
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def _literal(moment: datetime) -> str:
    return f"'{moment:%Y-%m-%d %H:%M:%S}+00'"


def _index_definitions(cursor, table: str) -> list[str]:
    """CREATE INDEX statements of the table's indexes that back no primary key or unique constraint."""
    cursor.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype IN ('p', 'u')) ORDER BY indexname",
        [table, table],
    )
    # A partitioned parent's indexes read "ON ONLY table": the statement is replayed on a new table.
    return [row[0].replace(" ON ONLY ", " ON ") for row in cursor.fetchall()]


def _sequence_position(cursor) -> tuple[int, bool]:
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
    (sequence,) = cursor.fetchone()
    cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
    return cursor.fetchone()


def _is_partitioned(cursor) -> bool:
    cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = %s::regclass", [TABLE])
    return cursor.fetchone()[0]


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite: one plain table, pruned by DELETE in batches
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        if _is_partitioned(cursor):
            return
        last_value, is_called = _sequence_position(cursor)
        indexes = _index_definitions(cursor, TABLE)
        # The months that have rows (not every month between the oldest and newest row: one stray
        # timestamp must not make hundreds of partitions), this one and the next MONTHS_AHEAD.
        cursor.execute(f"SELECT DISTINCT date_trunc('month', created_at, 'UTC') FROM {TABLE}")
        months = {_month(m) for (m,) in cursor.fetchall()}
        month = _month(timezone.now())
        for _ in range(MONTHS_AHEAD + 1):
            months.add(month)
            month = _next_month(month)

        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
        # LIKE copies the columns in order, NOT NULL and the CHECK constraints; not the identity.
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING CONSTRAINTS INCLUDING STORAGE "
                       f"INCLUDING COMMENTS) PARTITION BY RANGE (created_at)")
        for month in sorted(months):
            cursor.execute(f"CREATE TABLE {TABLE}_y{month:%Y}m{month:%m} PARTITION OF {TABLE} "
                           f"FOR VALUES FROM ({_literal(month)}) TO ({_literal(_next_month(month))})")
        cursor.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD}")
        cursor.execute(f"DROP TABLE {OLD}")  # and its identity sequence, and its index names

        cursor.execute(f"CREATE SEQUENCE {SEQUENCE} AS bigint OWNED BY {TABLE}.id")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')")
        cursor.execute("SELECT setval(%s, %s, %s)", [SEQUENCE, last_value, is_called])
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, created_at)")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT usage_request_id_unique UNIQUE (request_id, created_at)")
        for statement in indexes:
            cursor.execute(statement)


def unpartition(apps, schema_editor):
    """Back to one plain table with an identity id, as migration 0001 made it (all rows kept)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        if not _is_partitioned(cursor):
            return
        last_value, is_called = _sequence_position(cursor)
        indexes = _index_definitions(cursor, TABLE)
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {PARTITIONED}")
        cursor.execute(f"CREATE TABLE {TABLE} (LIKE {PARTITIONED} INCLUDING CONSTRAINTS INCLUDING STORAGE "
                       f"INCLUDING COMMENTS)")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {PARTITIONED}")
        cursor.execute(f"DROP TABLE {PARTITIONED}")  # with its partitions and its sequence
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), %s, %s)", [last_value, is_called])
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
        # Fails, and so stops the migration, if two different requests came with the same client-chosen id.
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_request_id_key UNIQUE (request_id)")
        for statement in indexes:
            cursor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ('usage', '0005_daily_totals'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # SQLite keeps its column UNIQUE on request_id, which is what the constraint says there.
            state_operations=[
                migrations.AlterField(
                    model_name='usagerecord',
                    name='request_id',
                    field=models.CharField(max_length=64),
                ),
                migrations.AddConstraint(
                    model_name='usagerecord',
                    constraint=usage.models.UniqueWithPartitionKey(fields=('request_id',),
                                                                   name='usage_request_id_unique'),
                ),
            ],
            database_operations=[migrations.RunPython(partition, unpartition)],
        ),
    ]
