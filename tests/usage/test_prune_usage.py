"""prune_usage: retention of raw usage rows; whole month partitions on PostgreSQL, batched DELETEs on SQLite."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from usage import partitions
from usage.models import UsageDailyRollup, UsageRecord, UsageRollup
from usage.recorder import UsageEvent
from usage.writer import write_batch

pytestmark = pytest.mark.django_db


def record(request_id: str, created_at: datetime) -> UsageRecord:
    return UsageRecord.objects.create(request_id=request_id, endpoint="chat.completions", status=200,
                                      created_at=created_at)


def prune(*args: str) -> list[str]:
    out = StringIO()
    call_command("prune_usage", *args, stdout=out)
    return out.getvalue().splitlines()


@pytest.mark.smoke
def test_prune_usage_deletes_only_old_raw_rows():
    # 100 days back is before the month of a 30-day cut-off, so gone on either database.
    old = timezone.now() - timedelta(days=100)
    for i in range(5):
        record(f"old-{i}", old)
    record("new", timezone.now())
    lines = prune("--days", "30", "--batch", "2")
    assert lines[-1].startswith("deleted 5 usage records older than")
    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == ["new"]


@pytest.mark.smoke
def test_dry_run_deletes_nothing():
    for i in range(3):
        record(f"old-{i}", timezone.now() - timedelta(days=100))
    record("new", timezone.now())
    lines = prune("--days", "30", "--dry-run")
    assert lines[-1].startswith("would delete 3 usage records older than")
    assert UsageRecord.objects.count() == 4


@pytest.mark.smoke
def test_retention_days_come_from_the_setting_when_not_given(settings):
    record("old", timezone.now() - timedelta(days=100))
    settings.USAGE_RETENTION_DAYS = 0
    with pytest.raises(CommandError, match="USAGE_RETENTION_DAYS"):
        prune()
    settings.USAGE_RETENTION_DAYS = 30
    assert prune()[-1].startswith("deleted 1 usage records older than")
    assert not UsageRecord.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only")
def test_prune_drops_old_month_partitions_and_keeps_recent_rows_and_rollups():
    now = timezone.now()
    cutoff = now - timedelta(days=30)
    boundary = partitions.month_start(cutoff)  # retention is by whole months
    old_month = partitions.add_months(boundary, -3)
    partitions.usage_partitions_ensure(since=old_month)
    old_part, boundary_part = partitions.partition_name(old_month), partitions.partition_name(boundary)

    def event(request_id: str, created_at: datetime) -> UsageEvent:
        return UsageEvent(request_id=request_id, endpoint="chat.completions", status=200, key_id=1,
                          public_model="m", region="r", total_tokens=10, cost_usd=Decimal("0.01"),
                          created_at=created_at)

    events = [event("old", old_month + timedelta(days=3)), event("boundary", boundary),
              event("recent", now), event(uuid.uuid4().hex, now)]
    write_batch([e.to_row() for e in events])
    record("default-old", datetime(2001, 1, 1, tzinfo=UTC))  # in DEFAULT: no partition for 2001
    record("default-future", datetime(2095, 5, 5, tzinfo=UTC))
    rollups, daily = UsageRollup.objects.count(), UsageDailyRollup.objects.count()

    lines = prune("--days", "30")

    assert f"dropped {old_part} ({old_month:%Y-%m-%d} to {partitions.add_months(old_month, 1):%Y-%m-%d}, 1 rows)" \
        in lines
    # The old month's row and the 2001 one; the months between hold nothing.
    assert lines[-1].startswith(f"deleted 2 usage records older than {boundary:%Y-%m-%d} 00:00 UTC")
    assert "1 rows of the default partition" in lines[-1]
    names = {p.name for p in partitions.usage_partitions_list()}
    assert old_part not in names and boundary_part in names
    assert all(p.is_default or p.end > boundary for p in partitions.usage_partitions_list())
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {
        "boundary", "recent", events[3].request_id, "default-future"}
    # Rollups are the long-term record: untouched.
    assert (UsageRollup.objects.count(), UsageDailyRollup.objects.count()) == (rollups, daily)
    # The run also made sure partitions exist ahead, taking the far-future row out of DEFAULT.
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM usage_usagerecord WHERE request_id = 'default-future'")
        assert cursor.fetchone() == ("usage_usagerecord_y2095m05",)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only")
def test_dry_run_on_partitions_drops_nothing():
    old_month = partitions.add_months(partitions.month_start(timezone.now()), -6)
    partitions.usage_partitions_ensure(since=old_month)
    record("old", old_month)
    lines = prune("--days", "30", "--dry-run")
    assert f"would drop {partitions.partition_name(old_month)}" in "\n".join(lines)
    assert partitions.partition_name(old_month) in {p.name for p in partitions.usage_partitions_list()}
    assert UsageRecord.objects.filter(request_id="old").exists()
