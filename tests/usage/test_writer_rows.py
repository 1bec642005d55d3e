"""The usage writer stores each event's values as they are (COPY on PostgreSQL), and the raw table carries
only the indexes its queries use (migration 0007)."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from usage.models import UsageRecord, UsageRollup
from usage.recorder import UsageEvent
from usage.writer import write_batch

pytestmark = pytest.mark.django_db(transaction=True)


def event(**kw) -> UsageEvent:
    base = dict(request_id=uuid.uuid4().hex, endpoint="chat.completions", status=200, key_id=11, team_id=4,
                public_model="m", deployment="d", region="us-chicago-1", streamed=True, prompt_tokens=10,
                completion_tokens=5, total_tokens=15, cached_tokens=2, reasoning_tokens=1, usage_source="estimated",
                cost_usd=Decimal("0.00012345"), latency_ms=20, ttft_ms=None, upstream_request_id="up-1",
                client_ip="", user_agent="x" * 500, metadata={"projet": "été", "n": [1, 2]},
                created_at=datetime(2026, 11, 20, 10, 30, 5, 123456, tzinfo=UTC))
    base.update(kw)
    return UsageEvent(**base)


def test_events_are_stored_field_for_field():
    e = event()
    assert write_batch([e]) == 1
    row = UsageRecord.objects.get(request_id=e.request_id)
    assert (row.key_id, row.team_id, row.endpoint, row.public_model, row.deployment, row.region, row.status,
            row.streamed, row.usage_source) == (11, 4, "chat.completions", "m", "d", "us-chicago-1", 200, True,
                                                "estimated")
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens, row.cached_tokens,
            row.reasoning_tokens) == (10, 5, 15, 2, 1)
    assert row.cost_usd == Decimal("0.00012345")
    assert row.ttft_ms is None and row.client_ip is None  # an empty address is no address
    assert row.user_agent == "x" * 300  # cut to the column, not refused
    assert row.metadata == {"projet": "été", "n": [1, 2]}
    assert row.created_at == e.created_at
    rollup = UsageRollup.objects.get(key_id=11, bucket=datetime(2026, 11, 20, 10, tzinfo=UTC))
    assert (rollup.requests, rollup.total_tokens, rollup.estimated_tokens, rollup.ttft_count) == (1, 15, 15, 0)


def test_records_and_events_mix_in_one_batch():
    a, b = event(client_ip="10.1.2.3", ttft_ms=7), event()
    assert write_batch([a.to_row(), b]) == 2
    assert UsageRecord.objects.get(request_id=a.request_id).client_ip == "10.1.2.3"
    assert write_batch([a, b.to_row()]) == 0  # stored once, however it comes


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite does not enforce text lengths")
def test_an_overlong_text_value_is_cut_not_fatal_to_the_batch():
    good, long = event(), event(upstream_request_id="u" * 250, error_type="e" * 100)
    assert write_batch([good, long]) == 2
    row = UsageRecord.objects.get(request_id=long.request_id)
    assert (len(row.upstream_request_id), len(row.error_type)) == (200, 64)


def test_no_index_that_a_wider_one_already_covers():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, UsageRecord._meta.db_table)
    plain = [c["columns"] for c in constraints.values() if c["index"] and not c["unique"] and not c["primary_key"]]
    for single in (["key_id"], ["team_id"], ["request_id"]):
        assert single not in plain, plain
    assert ["key_id", "created_at"] in plain and ["team_id", "created_at"] in plain


def test_a_new_batch_is_inserted_without_looking_up_its_ids_first():
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert write_batch([event(), event()]) == 2
    reads = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT") and "usagerecord" in q["sql"]]
    assert reads == []


def test_a_batch_written_again_adds_only_its_new_records_to_the_rollups():
    hour = datetime(2026, 11, 20, 11, tzinfo=UTC)
    before = event(key_id=12, created_at=hour)
    assert write_batch([before]) == 1
    again = [before, event(key_id=12, created_at=hour), event(key_id=12, created_at=hour)]
    assert write_batch(again) == 2  # the stored one is left out, not a failed batch
    rollup = UsageRollup.objects.get(key_id=12, bucket=hour)
    assert (rollup.requests, rollup.total_tokens) == (3, 45)
    assert UsageRecord.objects.filter(key_id=12).count() == 3
