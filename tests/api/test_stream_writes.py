"""The stream relay writes the events of one upstream read in one write (the first token at once), losing none."""

import asyncio

import orjson
import pytest

from tests.limits.helpers import chat_body

pytestmark = pytest.mark.django_db(transaction=True)


def call_asgi(secret: str, body: dict) -> list[bytes]:
    """POST through the gateway's ASGI application in this process; the body of every write it makes."""
    from gateway_project.asgi import application

    writes: list[bytes] = []
    raw = orjson.dumps(body)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
             "headers": [(b"content-type", b"application/json"), (b"authorization", f"Bearer {secret}".encode())]}

    async def go():
        sent = asyncio.Event()
        stay = asyncio.Event()

        async def receive():
            if not sent.is_set():
                sent.set()
                return {"type": "http.request", "body": raw, "more_body": False}
            await stay.wait()  # the client never leaves

        async def send(message):
            if message["type"] == "http.response.body" and message.get("body"):
                writes.append(message["body"])

        await application(scope, receive, send)

    asyncio.run(go())
    return writes


def events(writes: list[bytes]) -> list[bytes]:
    return [line for line in b"".join(writes).split(b"\n\n") if line.startswith(b"data: ")]


@pytest.mark.parametrize("per_write", [1, 50])
def test_events_that_arrive_together_leave_together(gateway, per_write):
    gateway.emulator.set_settings(events_per_write=per_write)
    body = chat_body("count [[emulator: words=200]]", stream=True, stream_options={"include_usage": True})
    writes = call_asgi(gateway.key, body)
    relayed = events(writes)
    text = "".join(orjson.loads(e[6:])["choices"][0]["delta"].get("content") or ""
                   for e in relayed[:-2] if orjson.loads(e[6:])["choices"])
    assert len(text.split()) == 200  # every word relayed, in order, whatever the grouping
    assert relayed[-1] == b"data: [DONE]" and orjson.loads(relayed[-2][6:])["usage"]["completion_tokens"] > 0
    if per_write == 50:
        # About 200 events in 5 upstream writes: a handful of client writes, not one per event.
        assert len(writes) <= 20, len(writes)


def test_the_first_token_does_not_wait_for_the_rest_of_its_read(gateway):
    gateway.emulator.set_settings(events_per_write=50)  # the first token arrives with 49 more events
    writes = call_asgi(gateway.key, chat_body("count [[emulator: words=200]]", stream=True))

    def texts(write: bytes) -> list[str]:
        return [orjson.loads(e[6:])["choices"][0]["delta"].get("content") for e in events([write])
                if e != b"data: [DONE]"]

    first = next(w for w in writes if any(texts(w)))
    assert [t for t in texts(first) if t] == [texts(first)[-1]]  # it leaves alone (with the role chunk before it)
    assert len(events(writes)) > 150  # the rest followed
