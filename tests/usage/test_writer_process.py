"""`manage.py serve` with Redis: usage rows are written by a writer process of their own, not by the workers."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from io import StringIO
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command

from tests.conftest import GatewayProcess
from tests.usage.test_durability import fire, start_process, stored
from usage import writer_pace
from usage.keys import api_key_create
from usage.recorder import GROUP

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="the writer process reads the Redis usage stream"),
]
ROOT = Path(__file__).resolve().parents[2]


def own_prefix() -> str:
    """A key prefix of this test's own, so the stream's consumers are this gateway's alone."""
    return f"{settings.REDIS_KEY_PREFIX}writer-{uuid.uuid4().hex[:8]}:"


def consumers(prefix: str) -> list[str]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return [c["name"].decode() for c in client.xinfo_consumers(prefix + "usage", GROUP)]
    except redis.ResponseError:  # no stream or no group yet
        return []
    finally:
        client.close()


def wait_until(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    return check()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def consumer_pid(name: str) -> int:
    """The pid in a consumer's name: "<host>-<pid>" in a worker, "<host>-<pid>-writer" in the writer process."""
    return int(name.removesuffix("-writer").rsplit("-", 1)[1])


def serve_and_call(oci_settings, count: int, **env):
    """`manage.py serve` on a key prefix of its own, `count` chat calls through it, their records stored."""
    _key, secret = api_key_create(name=f"writer-{uuid.uuid4().hex[:6]}")
    prefix = own_prefix()
    proc = start_process(oci_settings, REDIS_KEY_PREFIX=prefix, **env)
    try:
        answered = asyncio.run(fire(proc.base_url, secret, count, "hello"))
        assert len(answered) == count
        assert wait_until(lambda: stored(answered) == set(answered))
    except BaseException:
        proc.stop()
        raise
    return proc, prefix, secret


def test_serve_writes_usage_from_one_writer_process_and_stops_it(oci_settings):
    proc, prefix, _secret = serve_and_call(oci_settings, 12)
    try:
        names = consumers(prefix)
        assert len(names) == 1 and names[0].endswith("-writer"), names  # the worker itself consumed nothing
        pid = consumer_pid(names[0])
        assert parent_of(pid) == proc.proc.pid
    finally:
        proc.stop()
    assert proc.proc.returncode == 0
    assert not alive(pid), "serve left its writer process behind"


def test_a_killed_writer_is_started_again_and_loses_nothing(oci_settings):
    proc, prefix, secret = serve_and_call(oci_settings, 10, USAGE_CLAIM_IDLE_MS="200")
    try:
        old = consumer_pid(consumers(prefix)[0])
        os.kill(old, signal.SIGKILL)
        # Served while no writer runs: the records wait in the stream for the next one.
        second = asyncio.run(fire(proc.base_url, secret, 10, "hello again"))
        assert len(second) == 10
        assert wait_until(lambda: stored(second) == set(second))
        pids = {consumer_pid(n) for n in consumers(prefix)}
        assert old in pids and len(pids) == 2
        assert all(parent_of(p) == proc.proc.pid for p in pids - {old})
    finally:
        proc.stop()


def test_usage_writer_in_process_keeps_the_consumer_in_the_worker(oci_settings):
    proc, prefix, _secret = serve_and_call(oci_settings, 5, USAGE_WRITER="in-process")
    try:
        assert [consumer_pid(n) for n in consumers(prefix)] == [proc.proc.pid]  # serve's own worker
        assert not consumers(prefix)[0].endswith("-writer")
    finally:
        proc.stop()


def test_write_usage_stops_when_its_parent_is_gone(oci_settings):
    env = GatewayProcess({"REDIS_KEY_PREFIX": own_prefix()}).env()
    shell = subprocess.Popen(
        ["sh", "-c", f'"{sys.executable}" manage.py write_usage --parent-pid $$ & echo $!; wait'],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )
    pid = int(shell.stdout.readline())
    assert wait_until(lambda: parent_of(pid) == shell.pid if alive(pid) else False, 5)
    shell.kill()  # serve killed outright: no SIGTERM reaches the writer
    shell.wait()
    assert wait_until(lambda: not alive(pid), 15), "the orphaned writer kept running"


def test_write_usage_needs_redis(settings):
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="REDIS_URL"):
        call_command("write_usage", stdout=StringIO())


@pytest.mark.skipif(not writer_pace.idle_policy_usable(), reason="this process may not leave SCHED_IDLE")
def test_the_writer_of_serve_runs_on_idle_cpu_while_it_keeps_up(oci_settings):
    proc, prefix, _secret = serve_and_call(oci_settings, 5)
    try:
        pid = consumer_pid(consumers(prefix)[0])

        def policies():
            return {os.sched_getscheduler(int(t)) for t in os.listdir(f"/proc/{pid}/task")}

        assert wait_until(lambda: policies() == {os.SCHED_IDLE}, 5), policies()
    finally:
        proc.stop()
