# Raw usage rows: three indexes that every insert paid for and no query needs (issue #13).
#
# key_id alone and team_id alone are covered by (key_id, created_at) and (team_id, created_at). On PostgreSQL,
# request_id's varchar_pattern_ops index, left from the field's former unique=True, serves only LIKE 'x%', which
# nothing runs: lookups by request id use the unique key (request_id, created_at). Eight indexes became five on
# every partition, and the usage writer's PostgreSQL CPU per row fell with them (docs/benchmarks.md).

from django.db import migrations, models

TABLE = "usage_usagerecord"
REDUNDANT = (["key_id"], ["team_id"], ["request_id"])


def drop(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    for name, c in sorted(constraints.items()):
        # Never a unique one: SQLite keeps request_id UNIQUE, and that is how it dedupes.
        if c["index"] and not c["unique"] and not c["primary_key"] and c["columns"] in REDUNDANT:
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create(apps, schema_editor):
    for column in ("key_id", "team_id"):
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_{column}_idx ON {TABLE} ({column})")


class Migration(migrations.Migration):

    dependencies = [
        ('usage', '0006_partition_usage_records'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='usagerecord',
                    name='key',
                    field=models.ForeignKey(db_constraint=False, db_index=False, null=True,
                                            on_delete=models.deletion.DO_NOTHING, to='usage.apikey'),
                ),
                migrations.AlterField(
                    model_name='usagerecord',
                    name='team',
                    field=models.ForeignKey(db_constraint=False, db_index=False, null=True,
                                            on_delete=models.deletion.DO_NOTHING, to='usage.team'),
                ),
            ],
            database_operations=[migrations.RunPython(drop, create)],
        ),
    ]
