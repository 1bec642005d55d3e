"""The limiter's pipelined Redis connection (usage/redis_mux.py): one write per loop iteration, replies in order."""

import asyncio
import uuid

import pytest

from usage.redis_mux import MuxRedis, ReplyError, Script, pack

from .helpers import REDIS, needs_redis

pytestmark = [pytest.mark.smoke]


def test_commands_are_packed_in_resp():
    assert pack(("SET", "k", 12, b"\x00v")) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$2\r\n\x00v\r\n"


def test_urls_name_the_server_and_database():
    client = MuxRedis("rediss://user:p%40ss@redis.example:6380/3")
    assert (client.host, client.port, client.db, client.tls) == ("redis.example", 6380, 3, True)
    assert (client.username, client.password) == ("user", "p@ss")
    client = MuxRedis("unix:///run/redis.sock?db=2")
    assert (client.unix_path, client.db) == ("/run/redis.sock", 2)
    with pytest.raises(ValueError):
        MuxRedis("memcached://x")


@needs_redis
async def test_concurrent_commands_share_one_write_and_get_their_own_replies():
    client = MuxRedis(REDIS)
    await client.command("PING")
    before = client.writes
    replies = await asyncio.gather(*(client.command("ECHO", f"m{i}") for i in range(20)))
    assert replies == [f"m{i}".encode() for i in range(20)]
    assert client.writes - before == 1  # twenty callers, one write
    client.close()


@needs_redis
async def test_error_replies_are_values_and_scripts_load_themselves():
    client = MuxRedis(REDIS)
    ok, error = await client.execute(("PING",), ("NOSUCHCOMMAND",))
    assert ok == b"PONG" and isinstance(error, ReplyError)
    with pytest.raises(ReplyError):
        await client.command("NOSUCHCOMMAND")
    script = Script(f"return {{1, ARGV[1], KEYS[1]}}  -- {uuid.uuid4()}")  # unknown to Redis, as after a restart
    assert await client.evalsha(script, ["key"], ["arg"]) == [1, b"arg", b"key"]
    client.close()


@needs_redis
async def test_a_lost_connection_fails_what_waits_and_the_next_call_reconnects():
    client = MuxRedis(REDIS)
    await client.command("PING")
    waiting = asyncio.ensure_future(client.command("BLPOP", "test_redis_mux:none", 5))
    await asyncio.sleep(0.05)
    client._conn.transport.abort()
    with pytest.raises(ConnectionError):
        await waiting
    assert await client.command("PING") == b"PONG"
    client.close()


@needs_redis
async def test_a_connection_that_stopped_answering_is_replaced():
    client = MuxRedis(REDIS, stale_after=0.1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await client.command("BLPOP", "test_redis_mux:none", 2)  # Redis answers nothing for 2 s
    assert await client.command("PING") == b"PONG"  # on a new connection
    client.close()


async def test_an_unreachable_redis_raises():
    client = MuxRedis("redis://127.0.0.1:1/0", connect_timeout=0.5)
    with pytest.raises(OSError):
        await client.command("PING")


@needs_redis
async def test_idle_until_a_command_is_queued_or_unanswered_and_flush_sends_at_once():
    client = MuxRedis(REDIS)
    await client.command("PING")
    assert client.idle
    before = client.writes
    pending = asyncio.ensure_future(client.command("ECHO", "x"))
    await asyncio.sleep(0)  # the command is queued; it would leave when this loop iteration ends
    assert not client.idle and client.writes == before
    client.flush()
    assert client.writes == before + 1 and not client.idle  # sent, its reply not read yet
    assert await pending == b"x" and client.idle
    client.close()
