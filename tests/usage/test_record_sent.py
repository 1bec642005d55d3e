"""A response need not wait for Redis to acknowledge its usage record (UsageRecorder.record_sent): the record
is written to the Redis link before the response leaves, and its acknowledgement is awaited after."""

import asyncio

import httpx
import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings

from api import asgi_adapter
from api.handlers import dispatch
from api.http import ApiRequest, ApiResponse
from usage import limits
from usage.recorder import UsageEvent, UsageRecorder

from .test_recorder import _stream_of_this_test, event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL"),
]


def _link():
    return limits._REDIS.opened_client()._conn


class OwnStream:
    """A usage stream only the test's event loop writes to (the live test server's consumer reads the shared one)."""

    def __init__(self, monkeypatch) -> None:
        self.name, self._own_loop = _stream_of_this_test(monkeypatch)
        self.client = redis.Redis.from_url(settings.REDIS_URL)

    async def recorder(self, *, open_link: bool = True) -> UsageRecorder:
        """A recorder writing to this stream from the running loop; with `open_link`, its Redis link is open."""
        self._own_loop.append(asyncio.get_running_loop())
        rec = UsageRecorder()
        if open_link:
            await rec.record_sent(event())
        return rec

    def ids(self) -> list[str]:
        return [UsageEvent.from_json(data[b"e"]).request_id for _id, data in self.client.xrange(self.name)]


@pytest.fixture
def own_stream(monkeypatch):
    stream = OwnStream(monkeypatch)
    yield stream
    stream.client.delete(stream.name)


def test_the_record_is_on_the_link_when_record_sent_returns_and_in_redis_once_acknowledged(own_stream):
    async def scenario():
        rec = await own_stream.recorder(open_link=False)
        first = event()
        assert await rec.record_sent(first) is None  # no link open yet: durable in full before returning
        e = event()
        writes = limits._REDIS.opened_client().writes
        acknowledged = await rec.record_sent(e)
        conn = _link()
        seen = {"written": conn.writes - writes, "unsent": len(conn.outgoing), "awaiting": len(conn.waiters)}
        await acknowledged()
        limits._REDIS.opened_client().close()
        return first, e, seen, rec.pending()

    first, e, seen, pending = async_to_sync(scenario)()
    assert seen == {"written": 1, "unsent": 0, "awaiting": 1}  # written to Redis, its answer still to come
    assert pending == 0
    assert own_stream.ids() == [first.request_id, e.request_id]


def test_a_busy_link_carries_the_record_with_the_loop_iterations_other_commands(own_stream):
    async def scenario():
        rec = await own_stream.recorder()
        mux = limits._REDIS.opened_client()
        other = asyncio.ensure_future(mux.command("PING"))  # another call's command, awaiting its answer
        await asyncio.sleep(0)
        mux.flush()
        assert not mux.idle
        before = mux.writes
        events = [event(), event()]
        waits = await asyncio.gather(*(rec.record_sent(e) for e in events))
        written = mux.writes - before
        for wait in waits:
            await wait()
        await other
        mux.close()
        return events, written

    events, written = async_to_sync(scenario)()
    assert written == 1  # both records left in one write, not one flush each
    assert own_stream.ids()[-2:] == [e.request_id for e in events]


def test_an_append_refused_after_the_response_keeps_the_record_in_memory(own_stream):
    async def scenario():
        rec = await own_stream.recorder()
        own_stream.client.delete(own_stream.name)
        own_stream.client.set(own_stream.name, "not a stream")  # the XADD fails with WRONGTYPE
        e = event()
        acknowledged = await rec.record_sent(e)
        assert acknowledged is not None and rec.pending() == 0
        await acknowledged()
        limits._REDIS.opened_client().close()
        return e, [q.request_id for q in rec._queue]

    e, queued = async_to_sync(scenario)()
    assert queued == [e.request_id]


def test_a_shutdown_during_the_wait_keeps_the_record_in_memory(own_stream):
    async def scenario():
        rec = await own_stream.recorder()
        e = event()
        waiting = asyncio.ensure_future((await rec.record_sent(e))())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        limits._REDIS.opened_client().close()
        return e, [q.request_id for q in rec._queue]

    e, queued = async_to_sync(scenario)()
    assert queued == [e.request_id]  # the writer refuses it if the append landed too


def test_dispatch_runs_the_after_work_unless_its_caller_sends_first():
    request = ApiRequest(method="POST", path="/v1/x", headers={}, body=b"", client_ip=None, request_id="r1")
    ran = []

    async def after():
        ran.append("after")

    async def handler(_request):
        return ApiResponse(body=b"{}", after=after)

    async def scenario():
        plain = await dispatch(handler, request)
        ran.append("returned")
        deferred = await dispatch(handler, request, after_sent=True)
        return plain, deferred

    plain, deferred = asyncio.run(scenario())
    assert ran == ["after", "returned"] and plain.after is None  # Django's views: done before the response
    assert deferred.after is after  # the raw adapter sends the response, then runs it


def test_the_gateway_answers_while_the_record_is_on_its_way_to_redis(gateway, monkeypatch):
    seen = []
    real = asgi_adapter._send_response

    async def watching(send, response):
        conn = _link()
        seen.append({"unsent": len(conn.outgoing), "awaiting": len(conn.waiters)})
        await real(send, response)

    monkeypatch.setattr(asgi_adapter, "_send_response", watching)
    headers = {"Authorization": f"Bearer {gateway.key}"}
    body = {"model": "meta.llama-3.3-70b-instruct", "messages": [{"role": "user", "content": "hi"}]}
    httpx.post(gateway.api_base + "/chat/completions", json=body, headers=headers, timeout=30)  # opens the link
    seen.clear()
    response = httpx.post(gateway.api_base + "/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    # The settle and the record's XADD were written and not yet answered when the response went out.
    assert seen == [{"unsent": 0, "awaiting": 1}]
    request_id = response.headers["x-request-id"]
    assert request_id in {r.request_id for r in gateway.usage_records(2)}
