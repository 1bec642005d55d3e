"""The usage recorder: batched writes, exact rollups, spill files, the Redis stream."""

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection

from usage import recorder as recorder_module
from usage.models import UsageRecord, UsageRollup
from usage.recorder import UsageEvent, UsageRecorder

pytestmark = pytest.mark.django_db(transaction=True)


def event(**kw) -> UsageEvent:
    base = dict(request_id=uuid.uuid4().hex, endpoint="chat.completions", status=200, key_id=7, team_id=3,
                public_model="m", region="us-chicago-1", prompt_tokens=10, completion_tokens=5, total_tokens=15,
                usage_source="upstream", cost_usd=Decimal("0.001"), latency_ms=20, ttft_ms=5,
                created_at=datetime(2026, 11, 23, 10, 15, tzinfo=UTC))
    base.update(kw)
    return UsageEvent(**base)


@pytest.mark.smoke
def test_flush_writes_records_and_rollups_exactly_once():
    rec = UsageRecorder()
    events = [event(), event(), event(status=502, prompt_tokens=0, completion_tokens=0, total_tokens=0),
              event(usage_source="estimated", created_at=datetime(2026, 11, 23, 11, 1, tzinfo=UTC))]
    for e in events:
        rec.record(e)
    assert rec.flush() == 4
    # The same records again (a replay) change nothing.
    for e in events:
        rec.record(e)
    assert rec.flush() == 0
    assert UsageRecord.objects.count() == 4
    ten = UsageRollup.objects.get(bucket=datetime(2026, 11, 23, 10, tzinfo=UTC))
    assert (ten.requests, ten.errors, ten.prompt_tokens, ten.total_tokens, ten.estimated_tokens) == (3, 1, 20, 30, 0)
    assert ten.cost_usd == Decimal("0.003") and ten.ttft_count == 3
    eleven = UsageRollup.objects.get(bucket=datetime(2026, 11, 23, 11, tzinfo=UTC))
    assert (eleven.requests, eleven.estimated_tokens) == (1, 15)


def test_failed_flush_keeps_records_and_spills_past_the_bound(monkeypatch, tmp_path):
    monkeypatch.setattr(settings, "VAR_DIR", tmp_path)
    monkeypatch.setattr(recorder_module, "QUEUE_MAX", 2)
    rec = UsageRecorder()
    calls = {"n": 0}

    def broken(events):
        calls["n"] += 1
        raise RuntimeError("database down")

    monkeypatch.setattr(recorder_module, "_write", broken)
    for _ in range(3):
        rec.record(event())
    assert list(tmp_path.glob("usage-spill-*.jsonl"))  # the third did not fit in memory
    assert rec.flush() == 0 and rec.pending() == 2
    monkeypatch.undo()
    monkeypatch.setattr(settings, "VAR_DIR", tmp_path)
    assert rec.flush() == 3
    assert not list(tmp_path.glob("usage-spill-*.jsonl"))
    assert UsageRecord.objects.count() == 3


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
def test_durable_records_go_through_the_redis_stream():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(recorder_module.stream_name())
    rec = UsageRecorder()
    events = [event() for _ in range(5)]

    async def scenario():
        for e in events:
            await rec.record_durable(e)
        assert rec.pending() == 0  # nothing waits in memory: it is in Redis
        written = 0
        for _ in range(5):
            written += await rec._drain_stream_once(block_ms=100)
            if written == 5:
                break
        await rec.stop()
        return written

    assert async_to_sync(scenario)() == 5
    assert UsageRecord.objects.filter(request_id__in=[e.request_id for e in events]).count() == 5
    assert client.xlen(recorder_module.stream_name()) == 0


def test_rollup_upsert_works_on_this_database():
    assert connection.vendor in ("sqlite", "postgresql")
    rec = UsageRecorder()
    rec.record(event())
    rec.flush()
    rec.record(event())
    rec.flush()
    assert UsageRollup.objects.get().requests == 2
    asyncio.run(asyncio.sleep(0))


def _stream_of_this_test(monkeypatch) -> tuple[str, list]:
    """A Redis stream only the test's own loop uses (append the loop to the returned list).

    The live test server's recorder (same module, its own loop) keeps reading the shared stream; patching the
    stream name for every loop would let it take the test's records.
    """
    stream = f"{recorder_module.stream_name()}-test-{uuid.uuid4().hex}"
    shared_name = recorder_module.stream_name
    own_loop: list = []

    def stream_name():
        try:
            mine = asyncio.get_running_loop() in own_loop
        except RuntimeError:
            mine = False
        return stream if mine else shared_name()

    monkeypatch.setattr(recorder_module, "stream_name", stream_name)
    return stream, own_loop


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
def test_settle_and_record_go_to_redis_in_one_round_trip(monkeypatch):
    """Issue #8: a call's record is appended to the stream in the same round trip as the limiter's settle."""
    from usage import limits
    from usage.auth import KeyPrincipal

    # A stream of its own: a live gateway's consumer must not write these records into another test's tables.
    stream, own_loop = _stream_of_this_test(monkeypatch)
    kid = 900_000_000 + uuid.uuid4().int % 10**8  # no other test's counters
    principal = KeyPrincipal(
        id=kid, name=f"key{kid}", prefix="sk-test", team_id=None, team_name="", allowed_models=frozenset(),
        team_allowed_models=frozenset(), metadata={}, expires_at=None, digest="d", previous_valid_until=None,
        limits=limits.Limits(rpm=100, tpm=10**6, parallel=5, token_budget=10**6),
    )
    demand = limits.Demand(rate_tokens=300, prompt_tokens=100, max_output=200, min_output=200)
    client = redis.Redis.from_url(settings.REDIS_URL)
    slots = limits._REDIS.prefix() + f"k{kid}:parallel"

    async def scenario():
        own_loop.append(asyncio.get_running_loop())
        rec = UsageRecorder()
        warm = await limits.reserve(principal, demand)  # script loaded, budget counter seeded
        await rec.record_durable(event(key_id=kid), settle=warm)
        reservation = await limits.reserve(principal, demand)
        assert client.zcard(slots) == 1
        mux = limits._REDIS._client()[1]
        before = mux.writes
        e = event(key_id=kid, total_tokens=42)
        await rec.record_durable(e, settle=reservation)
        writes = mux.writes - before
        mux.close()
        return e, writes

    e, writes = async_to_sync(scenario)()
    assert writes == 1  # EVALSHA settle + XADD: one write, one round trip
    assert client.zcard(slots) == 0  # settled: the parallel slot is free
    entries = client.xrange(stream)
    client.delete(stream)
    assert [UsageEvent.from_json(data[b"e"]).request_id for _id, data in entries][-1] == e.request_id


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
def test_the_stream_consumer_writes_what_arrives_during_its_linger_in_one_batch(monkeypatch):
    """Under load one database write (and one live-feed message) per linger, not one per request."""
    stream, own_loop = _stream_of_this_test(monkeypatch)
    monkeypatch.setattr(recorder_module, "_announce", lambda events: None)
    monkeypatch.setenv("USAGE_STREAM_LINGER_SECONDS", "0.3")
    rec = UsageRecorder()
    batches = []
    monkeypatch.setattr(rec, "_write_stream_batch", lambda events: batches.append(len(events)) or True)
    client = redis.Redis.from_url(settings.REDIS_URL)

    async def until(done) -> None:
        for _ in range(150):
            if done():
                return
            await asyncio.sleep(0.02)

    async def scenario():
        own_loop.append(asyncio.get_running_loop())
        consumer = asyncio.ensure_future(rec._consume_forever())
        try:
            client.xadd(stream, {"e": event().to_json()})
            await until(lambda: batches)
            for _ in range(5):  # these arrive while the consumer lingers
                client.xadd(stream, {"e": event().to_json()})
            await until(lambda: sum(batches) == 6)
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            if rec._redis is not None:
                await rec._redis.aclose()

    async_to_sync(scenario)()
    client.delete(stream)
    assert batches == [1, 5]


def test_a_consumer_that_swallows_its_cancellation_still_stops(monkeypatch):
    """redis-py 8.1 swallowed about 1 in 40 cancellations of a blocking XREADGROUP: the consumer read on, the
    writer process never ended (it outlived its `serve`), a worker's shutdown hung."""
    rec = UsageRecorder()
    reads, swallowed = [], []

    async def stubborn_read(block_ms):
        reads.append(block_ms)
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed.append(block_ms)  # what redis-py did with the cancel, once
        return 0

    monkeypatch.setattr(rec, "_drain_stream_once", stubborn_read)

    async def scenario():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, stop.set)
        await asyncio.wait_for(rec.consume_until(stop), timeout=10)

    asyncio.run(scenario())
    assert swallowed == [1000]
    assert reads[-1] is None  # stopped all the same, then drained what was left once
