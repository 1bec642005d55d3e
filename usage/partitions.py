"""Monthly partitions of the raw usage table on PostgreSQL: created ahead, listed, dropped for retention.

Migration 0006 made `usage_usagerecord` a table partitioned by range of created_at, with one partition
per UTC month (`usage_usagerecord_y2026m11`) and a DEFAULT partition that takes any row no month
partition covers, so no usage record is ever refused. `usage_partitions_ensure` keeps partitions ready
for this month and the next MONTHS_AHEAD (called when the gateway starts and by `prune_usage`), and moves
rows out of DEFAULT into the month partition it creates for them. Retention drops whole months.

On SQLite (and before migration 0006) the table is not partitioned and every function here is a no-op;
`prune_usage` deletes old rows in batches there.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone

log = logging.getLogger("gateway.usage")

TABLE = "usage_usagerecord"
DEFAULT_PARTITION = f"{TABLE}_default"
MONTHS_AHEAD = 3
# Every change to the partition set takes this transaction-level advisory lock: two gateway processes
# starting together, or start-up and a cron `prune_usage`, never create or drop the same partition twice.
ADVISORY_LOCK = 0x7573_6167_6570  # "usagep"
# DDL here waits for table locks behind running queries; give up (and try again later) rather than make
# every usage query queue behind it.
LOCK_TIMEOUT = "5s"

_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    start: datetime | None  # None for the DEFAULT partition
    end: datetime | None

    @property
    def is_default(self) -> bool:
        return self.start is None


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"{TABLE}_y{month:%Y}m{month:%m}"


def _literal(moment: datetime) -> str:
    return f"'{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}+00'"


def usage_partitioned() -> bool:
    """Whether the raw usage table is partitioned (PostgreSQL after migration 0006)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [TABLE])
        return cursor.fetchone() is not None


def _partitions(cursor) -> list[Partition]:
    # Bounds are printed in the session's time zone, which Django sets to UTC.
    cursor.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        [TABLE],
    )
    found = []
    for name, bound in cursor.fetchall():
        match = _BOUND.search(bound)
        if match is None:
            found.append(Partition(name, None, None))  # FOR VALUES DEFAULT
        else:
            start, end = (datetime.fromisoformat(v).astimezone(UTC) for v in match.groups())
            found.append(Partition(name, start, end))
    return sorted(found, key=lambda p: (p.is_default, p.start or datetime.min.replace(tzinfo=UTC)))


def usage_partitions_list() -> list[Partition]:
    """The month partitions by start, then DEFAULT; empty when the table is not partitioned."""
    if not usage_partitioned():
        return []
    with connection.cursor() as cursor:
        return _partitions(cursor)


def _lock(cursor) -> None:
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])


def _attach_month(cursor, month: datetime) -> None:
    """Create the month's partition, taking over the rows of that month the DEFAULT partition holds.

    Built beside the table and then attached: ATTACH PARTITION takes only a SHARE UPDATE EXCLUSIVE lock on
    the parent, so usage keeps being written to the other partitions meanwhile (CREATE TABLE … PARTITION OF
    would lock the parent exclusively). DEFAULT is locked first and for the whole move, so no row of that
    month can land in it between the move and the attach (which would make the attach fail).
    """
    name, end = partition_name(month), add_months(month, 1)
    cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING CONSTRAINTS INCLUDING STORAGE)")
    cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE created_at >= %s AND created_at < %s RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved",
        [month, end],
    )
    if cursor.rowcount:
        log.info("usage partitions: moved %d rows from %s to %s", cursor.rowcount, DEFAULT_PARTITION, name)
    # Builds the parent's indexes, primary key and unique key on the new partition.
    cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} "
                   f"FOR VALUES FROM ({_literal(month)}) TO ({_literal(end)})")


def usage_partitions_ensure(*, now: datetime | None = None, months_ahead: int = MONTHS_AHEAD,
                            since: datetime | None = None) -> list[str]:
    """Create the missing month partitions; return their names. Idempotent and safe to run concurrently.

    Covers the month of `now` and the `months_ahead` after it, every month from `since` (for back-filled
    data), and every month that has rows in the DEFAULT partition (those rows move to the new partition).
    """
    if not usage_partitioned():
        return []
    current = month_start(now or timezone.now())
    first = month_start(since) if since is not None and since < current else current
    wanted, month = set(), first
    while month <= add_months(current, months_ahead):
        wanted.add(month)
        month = add_months(month, 1)
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        cursor.execute(f"SELECT DISTINCT date_trunc('month', created_at, 'UTC') FROM {DEFAULT_PARTITION}")
        wanted.update(month_start(m) for (m,) in cursor.fetchall())
        have = {p.start for p in _partitions(cursor) if not p.is_default}
        for month in sorted(wanted - have):
            _attach_month(cursor, month)
            created.append(partition_name(month))
    if created:
        log.info("usage partitions created: %s", ", ".join(created))
    return created


def usage_partitions_drop(*, before: datetime, dry_run: bool = False) -> list[tuple[Partition, int]]:
    """Detach and drop the month partitions wholly older than `before`; return them with their row counts."""
    if not usage_partitioned():
        return []
    dropped = []
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        for part in _partitions(cursor):
            if part.is_default or part.end > before:
                continue
            cursor.execute(f"SELECT count(*) FROM {part.name}")
            dropped.append((part, cursor.fetchone()[0]))
            if not dry_run:
                # Not CONCURRENTLY: PostgreSQL refuses that while a DEFAULT partition exists. The ACCESS
                # EXCLUSIVE lock on the parent is held only for this catalogue change.
                cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {part.name}")
                cursor.execute(f"DROP TABLE {part.name}")
    return dropped


def usage_default_prune(*, before: datetime, batch: int = 10_000, dry_run: bool = False) -> int:
    """Delete the DEFAULT partition's rows older than `before`, in batches; return how many."""
    if not usage_partitioned():
        return 0
    with connection.cursor() as cursor:
        if dry_run:
            cursor.execute(f"SELECT count(*) FROM {DEFAULT_PARTITION} WHERE created_at < %s", [before])
            return cursor.fetchone()[0]
        deleted = 0
        while True:
            cursor.execute(
                f"DELETE FROM {DEFAULT_PARTITION} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {DEFAULT_PARTITION} "
                f"WHERE created_at < %s LIMIT %s))",
                [before, batch],
            )
            deleted += cursor.rowcount
            if cursor.rowcount < batch:
                return deleted
