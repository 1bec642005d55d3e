"""PostgreSQL: raw usage rows partitioned by month (migration 0006, usage/partitions.py)."""

import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from usage import partitions, writer
from usage.models import UsageRecord, UsageRollup
from usage.recorder import UsageEvent
from usage.writer import write_batch

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only")


def event(created_at: datetime, **kw) -> UsageEvent:
    base = dict(request_id=uuid.uuid4().hex, endpoint="chat.completions", status=200, key_id=7, team_id=3,
                public_model="m", region="us-chicago-1", prompt_tokens=10, completion_tokens=5, total_tokens=15,
                usage_source="upstream", cost_usd=Decimal("0.001"), latency_ms=20, created_at=created_at)
    base.update(kw)
    return UsageEvent(**base)


def stored_in(request_id: str) -> list[str]:
    """The partition (table) of each stored row with this request id."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM usage_usagerecord WHERE request_id = %s", [request_id])
        return [row[0] for row in cursor.fetchall()]


def drop_tables(*names: str) -> None:
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.django_db
def test_table_is_partitioned_by_month_with_a_default_partition():
    with connection.cursor() as cursor:
        cursor.execute("SELECT p.partstrat, a.attname FROM pg_partitioned_table p JOIN pg_attribute a "
                       "ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
                       "WHERE p.partrelid = 'usage_usagerecord'::regclass")
        assert cursor.fetchall() == [("r", "created_at")]
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "WHERE i.inhparent = 'usage_usagerecord'::regclass")
        children = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'usage_usagerecord'")
        indexes = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = 'usage_usagerecord'::regclass AND contype IN ('p', 'u')")
        keys = dict(cursor.fetchall())
    this_month = partitions.month_start(timezone.now())
    assert {"usage_usagerecord_default", partitions.partition_name(this_month),
            partitions.partition_name(partitions.add_months(this_month, partitions.MONTHS_AHEAD))} <= children
    assert keys == {"usage_usagerecord_pkey": "PRIMARY KEY (id, created_at)",
                    "usage_request_id_unique": "UNIQUE (request_id, created_at)"}
    # Every index the plain table had is on the partitioned parent.
    assert {"usage_key_time", "usage_team_time"} <= indexes
    assert {i for i in indexes if i.startswith(("usage_usagerecord_created_at_", "usage_usagerecord_key_id_",
                                                "usage_usagerecord_team_id_", "usage_usagerecord_request_id_"))}
    assert partitions.usage_partitioned()


@pytest.mark.django_db
def test_written_records_land_in_their_month_partition():
    now = timezone.now()
    next_month = partitions.add_months(partitions.month_start(now), 1) + timedelta(days=2)
    events = [event(now), event(next_month)]
    assert write_batch([e.to_row() for e in events]) == 2
    assert stored_in(events[0].request_id) == [partitions.partition_name(partitions.month_start(now))]
    assert stored_in(events[1].request_id) == [partitions.partition_name(partitions.month_start(next_month))]
    # Ids still come from the one sequence (the writer inserts with COPY).
    ids = sorted(UsageRecord.objects.values_list("id", flat=True))
    assert len(set(ids)) == 2 and ids[1] > ids[0] > 0


@pytest.mark.django_db
def test_a_record_is_written_once_however_often_it_comes():
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    e = event(hour + timedelta(microseconds=123_456))
    assert write_batch([e.to_row(), e.to_row()]) == 1  # twice in one batch
    replayed = UsageEvent.from_json(e.to_json())  # from a spill file or the Redis stream, in a later batch
    assert write_batch([replayed.to_row(), event(hour).to_row()]) == 1
    assert write_batch([replayed.to_row()]) == 0
    assert stored_in(e.request_id) == [partitions.partition_name(partitions.month_start(e.created_at))]
    assert UsageRollup.objects.get().requests == 2
    # The database's own key still refuses the same record: (request_id, created_at) of a re-delivery match.
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageRecord.objects.bulk_create([replayed.to_row()])


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_one_record_store_it_once(monkeypatch):
    """The second writer looked before the first committed: the unique key (request_id, created_at) makes its
    insert fail, and write_batch looks again, so the record and its rollup are counted once."""
    e = event(timezone.now())
    first_inserted, second_inserting, results, inserts = threading.Event(), threading.Event(), {}, []
    real_insert = writer._insert_records

    def insert(rows):
        inserts.append([r.request_id for r in rows])
        if threading.current_thread().name == "second":
            second_inserting.set()
        real_insert(rows)
        if threading.current_thread().name == "first":
            first_inserted.set()

    monkeypatch.setattr(writer, "_insert_records", insert)

    def first():
        try:
            with transaction.atomic():
                results["first"] = write_batch([e.to_row()])
                second_inserting.wait(10)
                threading.Event().wait(0.2)  # let its insert wait on our uncommitted row
        finally:
            connections.close_all()

    def second():
        try:
            first_inserted.wait(10)  # inserted, not committed
            results["second"] = write_batch([UsageEvent.from_json(e.to_json()).to_row()])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first, name="first"), threading.Thread(target=second, name="second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {"first": 1, "second": 0}
    # The second writer's first insert was refused by the database, its retry found the row.
    assert inserts == [[e.request_id], [e.request_id], []]
    assert stored_in(e.request_id) == [partitions.partition_name(partitions.month_start(e.created_at))]
    assert UsageRollup.objects.get().requests == 1


@pytest.mark.django_db
def test_a_month_without_partition_goes_to_default_and_moves_when_its_partition_is_made():
    far = datetime(2091, 3, 15, 12, tzinfo=UTC)
    e = event(far)
    assert write_batch([e.to_row()]) == 1
    assert stored_in(e.request_id) == ["usage_usagerecord_default"]
    row_id = UsageRecord.objects.get(request_id=e.request_id).id

    assert partitions.usage_partitions_ensure() == ["usage_usagerecord_y2091m03"]
    assert stored_in(e.request_id) == ["usage_usagerecord_y2091m03"]
    assert UsageRecord.objects.get(request_id=e.request_id).id == row_id
    assert write_batch([e.to_row()]) == 0  # and still found by the writer where it now is


@pytest.mark.django_db
def test_ensure_is_idempotent():
    now = datetime(2093, 1, 10, tzinfo=UTC)
    made = partitions.usage_partitions_ensure(now=now, months_ahead=2)
    assert made == ["usage_usagerecord_y2093m01", "usage_usagerecord_y2093m02", "usage_usagerecord_y2093m03"]
    assert partitions.usage_partitions_ensure(now=now, months_ahead=2) == []
    listed = [p for p in partitions.usage_partitions_list() if p.name.startswith("usage_usagerecord_y2093")]
    assert [(p.name, p.start, p.end) for p in listed] == [
        ("usage_usagerecord_y2093m01", datetime(2093, 1, 1, tzinfo=UTC), datetime(2093, 2, 1, tzinfo=UTC)),
        ("usage_usagerecord_y2093m02", datetime(2093, 2, 1, tzinfo=UTC), datetime(2093, 3, 1, tzinfo=UTC)),
        ("usage_usagerecord_y2093m03", datetime(2093, 3, 1, tzinfo=UTC), datetime(2093, 4, 1, tzinfo=UTC)),
    ]


@pytest.mark.django_db(transaction=True)
def test_processes_ensuring_at_once_create_each_partition_once():
    now, made, errors = datetime(2094, 6, 1, tzinfo=UTC), [], []
    start = threading.Barrier(4)

    def ensure():
        try:
            start.wait(5)
            made.extend(partitions.usage_partitions_ensure(now=now, months_ahead=1))
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ensure) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        assert sorted(made) == ["usage_usagerecord_y2094m06", "usage_usagerecord_y2094m07"]
    finally:
        drop_tables("usage_usagerecord_y2094m06", "usage_usagerecord_y2094m07")  # flush keeps tables


@pytest.mark.django_db
def test_gateway_start_up_ensures_partitions(monkeypatch, settings):
    from api import startup

    ahead = partitions.partition_name(partitions.add_months(partitions.month_start(timezone.now()),
                                                            partitions.MONTHS_AHEAD))
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE usage_usagerecord DETACH PARTITION {ahead}")
    drop_tables(ahead)
    settings.GATEWAY_DEMO, settings.OCI_AUTH_TYPE = "", "INSTANCE_PRINCIPAL"
    monkeypatch.setattr(startup, "_collect_static", lambda: None)
    startup.prepare_to_serve()
    assert ahead in {p.name for p in partitions.usage_partitions_list()}


@pytest.mark.django_db(transaction=True)
def test_migration_is_reversible_and_keeps_rows_and_ids():
    now = timezone.now()
    e = [event(now), event(now - timedelta(days=400)), event(datetime(2092, 1, 2, tzinfo=UTC))]
    write_batch([x.to_row() for x in e])
    before = sorted(UsageRecord.objects.values_list("id", "request_id", "created_at"))
    tables = {p.name for p in partitions.usage_partitions_list()}
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("usage")
    try:
        executor.migrate([("usage", "0005_daily_totals")])
        assert not partitions.usage_partitioned()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), max(id) FROM usage_usagerecord")
            assert cursor.fetchone() == (3, max(i for i, _r, _c in before))
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(latest)
    assert partitions.usage_partitioned()
    assert sorted(UsageRecord.objects.values_list("id", "request_id", "created_at")) == before
    assert stored_in(e[1].request_id) == [partitions.partition_name(partitions.month_start(e[1].created_at))]
    assert write_batch([event(now).to_row()]) == 1
    assert UsageRecord.objects.order_by("-id").first().id > max(i for i, _r, _c in before)
    drop_tables(*({p.name for p in partitions.usage_partitions_list()} - tables))  # the old month's
