"""The usage writer process on idle CPU while it keeps up, at its nice level when it falls behind
(usage/writer_pace.py)."""

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings

from usage import writer_pace

ROOT = Path(__file__).resolve().parents[2]
needs_idle_policy = pytest.mark.skipif(not writer_pace.idle_policy_usable(),
                                       reason="this process may not leave SCHED_IDLE once in it")


def test_the_writer_competes_for_cpu_only_while_it_is_behind():
    lags = [0.1, 2.5, 1.0, 0.6, 0.3, 0.2, 3.0]
    switches = []

    async def lag():
        if not lags:
            raise asyncio.CancelledError
        return lags.pop(0)

    async def scenario():
        with pytest.raises(asyncio.CancelledError):
            await writer_pace.keep_pace(lag, switch=switches.append, every=0)

    asyncio.run(scenario())
    # Idle from the start; behind by 2.5 s: back to its nice level; idle again once within 0.5 s; behind again.
    assert switches == [True, False, True, False]


def test_a_lag_it_cannot_read_changes_nothing():
    switches, calls = [], []

    async def lag():
        calls.append(1)
        if len(calls) > 3:
            asyncio.current_task().cancel()
        raise ConnectionError("Redis away")

    async def scenario():
        with pytest.raises(asyncio.CancelledError):
            await writer_pace.keep_pace(lag, switch=switches.append, every=0)

    asyncio.run(scenario())
    assert switches == [True]


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
def test_the_lag_is_the_age_of_the_oldest_record_still_in_the_stream():
    import redis.asyncio as aioredis

    stream = f"{settings.REDIS_KEY_PREFIX}pace-test-{uuid.uuid4().hex}"
    sync = redis.Redis.from_url(settings.REDIS_URL)

    async def lag():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            return await writer_pace.stream_lag(client, stream)
        finally:
            await client.aclose()

    try:
        assert asyncio.run(lag()) == 0.0  # no stream: nothing waits
        sync.xadd(stream, {"e": b"{}"}, id=f"{int(time.time() * 1000) - 5000}-0")  # added 5 s ago
        sync.xadd(stream, {"e": b"{}"})  # and one now
        assert 4.9 <= asyncio.run(lag()) < 30
    finally:
        sync.delete(stream)


@needs_idle_policy
def test_set_idle_moves_every_thread_of_the_process_and_back():
    script = """
import json, os, threading
from usage import writer_pace
ready, done = threading.Event(), threading.Event()
threading.Thread(target=lambda: (ready.set(), done.wait())).start()
ready.wait()
def policies():
    return sorted({os.sched_getscheduler(int(t)) for t in os.listdir("/proc/self/task")})
writer_pace.set_idle(True)
idle = policies()
writer_pace.set_idle(False)
print(json.dumps([idle, policies(), len(os.listdir("/proc/self/task")), os.SCHED_IDLE, os.SCHED_OTHER]))
done.set()
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    idle, back, threads, sched_idle, sched_other = json.loads(out.stdout)
    assert threads == 2
    assert idle == [sched_idle] and back == [sched_other]
