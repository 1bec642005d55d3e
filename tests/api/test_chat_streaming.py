"""The stream relay: keep-alives, client disconnects, upstream failures mid-stream, Cohere's open streams."""

import asyncio
import time

import httpx
import orjson
import pytest

MODEL = "meta.llama-3.3-70b-instruct"


def stream_request(gateway, content, model=MODEL, **extra):
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": True, **extra}
    return httpx.stream("POST", gateway.api_base + "/chat/completions", json=body, timeout=60,
                        headers={"Authorization": f"Bearer {gateway.key}"})


def read_events(response) -> tuple[list, list[str]]:
    """(data payloads decoded, comment lines) of an SSE response."""
    events, comments = [], []
    for line in response.iter_lines():
        if line.startswith(":"):
            comments.append(line)
        elif line.startswith("data: "):
            data = line[6:]
            events.append(data if data == "[DONE]" else orjson.loads(data))
    return events, comments


def test_headers_and_done_terminator(gateway):
    with stream_request(gateway, "hello there") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events, _ = read_events(response)
    assert events[-1] == "[DONE]"
    ids = {e["id"] for e in events[:-1]}
    assert len(ids) == 1 and events[0]["choices"][0]["delta"]["role"] == "assistant"


def test_keep_alive_comments_while_upstream_is_slow(gateway, settings):
    settings.HEARTBEAT_SECONDS = 0.2
    with stream_request(gateway, "think slowly [[emulator: latency_ms=1200]]") as response:
        assert response.status_code == 200
        events, comments = read_events(response)
    assert len(comments) >= 3 and all(c == ": keep-alive" for c in comments)
    assert events[-1] == "[DONE]" and any(e["choices"][0]["delta"].get("content") for e in events[:-1])


def test_slow_first_byte_through_openai_sdk(gateway, settings):
    settings.HEARTBEAT_SECONDS = 0.2
    stream = gateway.openai().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "slow [[emulator: latency_ms=800]]"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("Emulated answer to: slow")


def test_upstream_error_before_first_byte_keeps_its_status(gateway):
    with stream_request(gateway, "[[emulator: status=429]]") as response:
        assert response.status_code == 429
        response.read()
        assert response.json()["error"]["type"] == "rate_limit_error"


def test_upstream_error_after_commit_becomes_error_event_then_done(gateway, settings):
    settings.HEARTBEAT_SECONDS = 0.1
    with stream_request(gateway, "[[emulator: latency_ms=500 status=503]]") as response:
        assert response.status_code == 200  # committed to the stream while waiting
        events, _ = read_events(response)
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["type"] == "upstream_unavailable"


def test_cut_mid_stream_ends_with_error_event_and_done(gateway):
    with stream_request(gateway, "a long answer please [[emulator: words=40 cut_after=5]]") as response:
        events, _ = read_events(response)
    assert events[-1] == "[DONE]"
    assert "error" in events[-2]
    records = gateway.usage_records(1)
    assert records[-1].status == 502 and records[-1].usage_source == "estimated"


def test_cohere_stream_left_open_after_finish_is_ended_by_gateway(gateway):
    start = time.monotonic()
    with stream_request(gateway, "hi [[emulator: keep_open]]", model="cohere.command-r-08-2024") as response:
        events, _ = read_events(response)
    assert time.monotonic() - start < 10
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e.get("choices"))
    assert text.startswith("Emulated answer to: hi")


def test_client_disconnect_stops_upstream_and_records_estimate(gateway):
    """With events 20 ms apart, at most 3 events are written after the client leaves."""

    async def scenario():
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"model": MODEL, "stream": True,
                    "messages": [{"role": "user", "content": "go on [[emulator: words=200 interval_ms=20]]"}]}
            async with client.stream("POST", gateway.api_base + "/chat/completions", json=body,
                                     headers={"Authorization": f"Bearer {gateway.key}"}) as response:
                seen = 0
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        seen += 1
                    if seen >= 5:
                        return response.headers["x-request-id"]

    request_id = asyncio.run(scenario())
    deadline = time.monotonic() + 5
    while True:
        entry = [e for e in gateway.emulator.ledger(0, wait=False) if e["opcRequestId"] == request_id][0]
        if entry["complete"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert entry["disconnected"] is True
    assert entry["eventsAfterDisconnect"] <= 3
    assert entry["eventsWritten"] < 100
    record = [r for r in gateway.usage_records(1) if r.request_id == request_id][0]
    assert record.usage_source == "estimated" and record.status == 499
    assert 0 < record.completion_tokens <= entry["eventsWritten"]


@pytest.mark.parametrize("model", ["meta.llama-3.3-70b-instruct", "cohere.command-r-08-2024",
                                   "cohere.command-a-03-2025"])
def test_streamed_text_reassembles_to_the_non_streamed_answer(gateway, model):
    client = gateway.openai()
    messages = [{"role": "user", "content": "Describe the weather in Paris today"}]
    whole = client.chat.completions.create(model=model, messages=messages)
    stream = client.chat.completions.create(model=model, messages=messages, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
