"""Writing usage batches: raw records plus their hourly rollups, exactly once per request id."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import orjson
from django.db import IntegrityError, connection, models, transaction

from .models import UsageRecord, UsageRollup

_SUM_FIELDS = (
    "requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens",
    "estimated_tokens", "cost_usd", "latency_ms_sum", "ttft_ms_sum", "ttft_count",
)


def _rollup_rows(rows: list[UsageRecord]) -> list[tuple]:
    sums: dict[tuple, list] = defaultdict(lambda: [0] * 8 + [Decimal(0)] + [0] * 3)
    teams: dict[tuple, int] = {}
    for r in rows:
        bucket = r.created_at.replace(minute=0, second=0, microsecond=0)
        group = (bucket, r.key_id or 0, r.public_model, r.region)
        teams[group] = r.team_id or 0
        s = sums[group]
        s[0] += 1
        s[1] += 1 if r.status >= 400 else 0
        s[2] += r.prompt_tokens
        s[3] += r.completion_tokens
        s[4] += r.total_tokens
        s[5] += r.cached_tokens
        s[6] += r.reasoning_tokens
        s[7] += r.total_tokens if r.usage_source == UsageRecord.Source.ESTIMATED else 0
        s[8] += r.cost_usd
        s[9] += r.latency_ms
        s[10] += r.ttft_ms or 0
        s[11] += 1 if r.ttft_ms is not None else 0
    return [(*group, teams[group], *values) for group, values in sums.items()]


def _upsert_rollups(rows: list[UsageRecord]) -> None:
    table = UsageRollup._meta.db_table
    columns = ("bucket", "key_id", "public_model", "region", "team_id", *_SUM_FIELDS)
    increments = ", ".join(f"{f} = {table}.{f} + excluded.{f}" for f in _SUM_FIELDS)
    # INSERT … ON CONFLICT DO UPDATE works the same on PostgreSQL and SQLite (3.24+).
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT (bucket, key_id, public_model, region) DO UPDATE SET {increments}"
    )
    ops = connection.ops
    params = [
        (ops.adapt_datetimefield_value(p[0]), *p[1:13], ops.adapt_decimalfield_value(p[13], 18, 8), *p[14:])
        for p in _rollup_rows(rows)
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _copy_converters() -> list:
    """Per column of the COPY, how a record's value becomes what psycopg writes.

    Not `Field.get_db_prep_save` per value (a fifth of the writer's CPU): plain values go as they are,
    text is cut to the column's length (one overlong value would fail the whole batch), JSON is
    serialised once, and an empty address is NULL.
    """
    out = []
    for f in _COPY_FIELDS:
        if isinstance(f, models.JSONField):
            out.append((f.attname, lambda v: orjson.dumps(v, default=str).decode()))
        elif isinstance(f, models.GenericIPAddressField):
            out.append((f.attname, lambda v: v or None))
        elif isinstance(f, models.CharField) and f.max_length:
            out.append((f.attname, lambda v, n=f.max_length: v[:n] if v and len(v) > n else v))
        else:
            out.append((f.attname, None))
    return out


_COPY_FIELDS = [f for f in UsageRecord._meta.concrete_fields if not f.primary_key]
_CONVERTERS = _copy_converters()


def _insert_records(rows: list) -> None:
    """Insert the raw rows: COPY on PostgreSQL (a tenth of bulk_create's CPU per row, measured), else bulk_create.

    `rows` are UsageRecords or anything with their attributes (the recorder's UsageEvents: no model instance
    needed for COPY). The ids come from the table's sequence either way; the writer never needs them back.
    """
    if connection.vendor != "postgresql":
        records = [r if isinstance(r, UsageRecord) else r.to_row() for r in rows]
        UsageRecord.objects.bulk_create(records, batch_size=1000)
        return
    quote = connection.ops.quote_name
    sql = (f"COPY {quote(UsageRecord._meta.db_table)} ({', '.join(quote(f.column) for f in _COPY_FIELDS)}) "
           "FROM STDIN")
    converters = _CONVERTERS
    # The raw psycopg cursor, wrapped so a duplicate still surfaces as Django's IntegrityError (write_batch retries).
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row([getattr(row, name) if convert is None else convert(getattr(row, name))
                            for name, convert in converters])


def write_batch(rows: list) -> int:
    """Insert the records not yet stored and add them to the rollups, in one transaction. Returns rows written.

    `rows`: UsageRecords, or the recorder's UsageEvents (same attributes). The common case, a batch never seen
    before, is inserted without looking first: the unique key (request_id, created_at) refuses a record stored
    before (a batch written again after a crash between commit and acknowledgement), and only then are the
    stored ones looked up and left out. Looking first cost more than the insert: a lookup of 185 ids was a
    sequential scan of the month's partition whenever its statistics were missing or stale (31 ms at 230k rows).
    """
    if not rows:
        return 0
    fresh, seen = [], set()
    for r in rows:
        if r.request_id not in seen:  # the same record twice in one batch
            seen.add(r.request_id)
            fresh.append(r)
    stored: set[str] = set()  # the first try looks nothing up
    for attempt in range(4):
        try:
            with transaction.atomic():
                if attempt:
                    # By request id alone, so in every month partition on PostgreSQL; the unique key there,
                    # (request_id, created_at), is the backstop against a concurrent writer of the same record.
                    stored = set(UsageRecord.objects.filter(request_id__in=seen).values_list("request_id", flat=True))
                missing = [r for r in fresh if r.request_id not in stored]
                _insert_records(missing)
                _upsert_rollups(missing)
                return len(missing)
        except IntegrityError:
            continue  # some were stored before, or by another writer meanwhile: look (again)
    raise IntegrityError("usage batch kept colliding with concurrent writers")
