"""The first request end to end: the official openai SDK → gateway → emulator, usage equal to the ledger."""

import pytest

pytestmark = [pytest.mark.smoke]


def ledger_entry(emulator, request_id):
    entries = [e for e in emulator.ledger(0) if e["opcRequestId"] == request_id]
    assert len(entries) == 1, entries
    return entries[0]


def test_chat_completion_through_openai_sdk(gateway):
    client = gateway.openai()
    raw = client.chat.completions.with_raw_response.create(
        model="meta.llama-3.3-70b-instruct", messages=[{"role": "user", "content": "Say hello to the gateway"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    request_id = raw.headers["x-request-id"]
    entry = ledger_entry(gateway.emulator, request_id)
    billed = entry["usage"]
    assert completion.usage.prompt_tokens == billed["promptTokens"]
    assert completion.usage.completion_tokens == billed["completionTokens"]
    records = gateway.usage_records(1)
    assert records[-1].request_id == request_id
    assert records[-1].total_tokens == billed["totalTokens"] and records[-1].usage_source == "upstream"


def test_streamed_chat_through_openai_sdk(gateway):
    client = gateway.openai()
    stream = client.chat.completions.create(
        model="meta.llama-3.3-70b-instruct", messages=[{"role": "user", "content": "Stream something"}],
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_models_list_and_retrieve(gateway):
    client = gateway.openai()
    ids = {m.id for m in client.models.list()}
    assert "meta.llama-3.3-70b-instruct" in ids
    assert client.models.retrieve("meta.llama-3.3-70b-instruct").id == "meta.llama-3.3-70b-instruct"
