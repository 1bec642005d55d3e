"""Upstream SSE transcripts → OpenAI chunks: split invariance, reassembly, tool calls, usage."""

from __future__ import annotations

import orjson
import pytest
from openai.types.chat import ChatCompletionChunk

from api.translate import cohere, cohere_v2, generic, stream_translator
from api.translate.sse import parse_event
from tests.translate.helpers import FIXTURES, accumulate, decode_all, fixture_bytes, replay

pytestmark = pytest.mark.smoke

META = {"model": "public", "completion_id": "chatcmpl-s1", "created": 1700000001}

FORMATS = {
    "cohere_text.sse": "COHERE",
    "cohere_tools.sse": "COHERE",
    "cohere_v2_text.sse": "COHEREV2",
    "cohere_v2_tools.sse": "COHEREV2",
    "openai_passthrough.sse": "OPENAI",
}
ALL = sorted(p.name for p in FIXTURES.glob("*.sse"))


def run(name: str, *, split: int | None = None, turn: int = 1):
    translator = stream_translator(FORMATS.get(name, "GENERIC"), **META, turn=turn)
    chunks = replay(translator, decode_all(fixture_bytes(name), split=split))
    return translator, chunks


@pytest.mark.parametrize("name", ALL)
def test_chunks_identical_at_every_split(name):
    _, whole = run(name)
    data = fixture_bytes(name)
    for k in range(len(data) + 1):
        _, chunks = run(name, split=k)
        assert chunks == whole, f"split at byte {k}"


@pytest.mark.parametrize("name", ALL)
def test_chunks_are_valid_openai_chunks(name):
    translator, chunks = run(name)
    assert chunks
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert (chunk["id"], chunk["created"], chunk["model"]) == ("chatcmpl-s1", 1700000001, "public")
        assert chunk["object"] == "chat.completion.chunk"
        assert "usage" not in chunk and "pad" not in orjson.dumps(chunk).decode()
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert len(finishes) == 1 and finishes[0] == chunks[-1]["choices"][0]["finish_reason"]
    assert translator.finished and translator.finish_reason == finishes[0]
    usage = translator.usage_chunk()
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0
    ChatCompletionChunk.model_validate(usage)


def _tool_view(completion) -> dict:
    message = completion.choices[0].message
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]
    extra = message.model_extra or {}
    return {
        "content": message.content or None,
        "reasoning": extra.get("reasoning_content") or None,
        "calls": calls,
        "finish": completion.choices[0].finish_reason,
    }


def _dict_view(out: dict) -> dict:
    message = out["choices"][0]["message"]
    calls = [
        (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls", [])
    ]
    return {
        "content": message["content"] or None,
        "reasoning": message.get("reasoning_content"),
        "calls": calls,
        "finish": out["choices"][0]["finish_reason"],
    }


def _generic_result(*, text="", reasoning=None, calls=(), finish="stop") -> dict:
    message: dict = {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": text}]}
    if reasoning:
        message["reasoningContent"] = reasoning
    if calls:
        message["toolCalls"] = [
            {**({"id": i} if i else {}), "type": "FUNCTION", "name": n, "arguments": a} for i, n, a in calls
        ]
    return {
        "chatResponse": {
            "apiFormat": "GENERIC",
            "choices": [{"index": 0, "message": message, "finishReason": finish}],
        }
    }


NON_STREAMED = {
    "generic_text.sse": _generic_result(text="Hello, world — déjà vu ✓"),
    "generic_newline_only.sse": _generic_result(text="One two three", finish="length"),
    "generic_tool_fragments.sse": _generic_result(
        calls=[("call_1", "get_weather", '{"city": "Paris"}'), ("call_2", "get_time", '{"tz": "CET"}')],
        finish="tool_calls",
    ),
    "xai_whole_calls.sse": _generic_result(
        reasoning="The user wants weather for two cities.",
        calls=[("call_x1", "get_weather", '{"city":"Paris"}'), ("call_x2", "get_weather", '{"city":"Oslo"}')],
        finish="STOP",
    ),
    "gpt_oss_fragments.sse": _generic_result(
        reasoning="Need the weather tool.",
        calls=[
            ("chatcmpl-tool-9f1", "get_weather", '{"city": "Lima"}'),
            ("chatcmpl-tool-a07", "get_time", '{"tz": "PET"}'),
        ],
        finish="tool_calls",
    ),
    "gemini_no_ids.sse": _generic_result(
        text="Checking both.",
        calls=[(None, "get_weather", '{"city":"Paris"}'), (None, "get_weather", '{"city":"Kyoto"}')],
    ),
}


@pytest.mark.parametrize("name", sorted(NON_STREAMED))
def test_generic_stream_reassembles_to_the_non_streamed_shape(name):
    _, chunks = run(name)
    streamed = _tool_view(accumulate(chunks))
    assert streamed == _dict_view(generic.chat_result_to_openai(NON_STREAMED[name], **META))
    ids = [c[0] for c in streamed["calls"]]
    assert len(set(ids)) == len(ids)


def test_tool_call_deltas_carry_id_and_name_once():
    _, chunks = run("generic_tool_fragments.sse")
    deltas = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    heads = [d for d in deltas if "id" in d]
    assert [(d["index"], d["id"], d["function"]["name"]) for d in heads] == [
        (0, "call_1", "get_weather"),
        (1, "call_2", "get_time"),
    ]
    assert all(d["type"] == "function" for d in heads)
    assert all(
        set(d) == {"index", "function"} and set(d["function"]) == {"arguments"}
        for d in deltas
        if "id" not in d
    )


def test_one_chunk_per_content_event_and_counters():
    translator, chunks = run("generic_text.sse")
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == [
        "",
        "Hello",
        ", world",
        " — déjà vu ✓",
        None,
    ]
    assert translator.content_events == 3
    assert translator.output_chars == len("Hello, world — déjà vu ✓")
    assert translator.usage == {"prompt_tokens": 41, "completion_tokens": 8, "total_tokens": 49}


def test_usage_event_is_stored_not_emitted():
    translator = generic.GenericStreamTranslator(**META)
    assert translator.usage_chunk() is None
    assert (
        translator.feed({"usage": {"promptTokens": 1, "completionTokens": 2, "totalTokens": 3}, "pad": "x"})
        == []
    )
    assert translator.usage_chunk()["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
    }


def test_generic_multiple_choices():
    translator = generic.GenericStreamTranslator(**META)
    events = [
        {"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "A"}]}},
        {"index": 1, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "B"}]}},
        {"index": 1, "finishReason": "length"},
        {"index": 0, "finishReason": "stop"},
    ]
    chunks = [c for e in events for c in translator.feed(e)]
    completion = accumulate(chunks)
    assert [(c.index, c.message.content, c.finish_reason) for c in completion.choices] == [
        (0, "A", "stop"),
        (1, "B", "length"),
    ]
    assert chunks[1]["choices"][0]["delta"]["role"] == "assistant"


def test_generic_restated_whole_calls_are_not_repeated():
    translator = generic.GenericStreamTranslator(**META)
    call = {"id": "c1", "type": "FUNCTION", "name": "f", "arguments": '{"a":1}'}
    first = translator.feed({"index": 0, "message": {"role": "ASSISTANT", "toolCalls": [call]}})
    final = translator.feed(
        {"index": 0, "message": {"role": "ASSISTANT", "toolCalls": [call]}, "finishReason": "tool_calls"}
    )
    assert first[0]["choices"][0]["delta"]["tool_calls"][0]["id"] == "c1"
    assert final[0]["choices"][0]["delta"] == {}
    assert final[0]["choices"][0]["finish_reason"] == "tool_calls"


def test_generic_call_named_after_its_id_is_opened_once_named():
    translator = generic.GenericStreamTranslator(**META)
    a = translator.feed({"message": {"toolCalls": [{"id": "c1", "arguments": '{"a"'}]}})
    b = translator.feed({"message": {"toolCalls": [{"name": "f", "arguments": ":1}"}]}})
    assert a[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert b[0]["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    ]


def test_cohere_text_reassembles_to_the_terminal_text_exactly():
    translator, chunks = run("cohere_text.sse")
    terminal = parse_event(decode_all(fixture_bytes("cohere_text.sse"))[-1])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == terminal["text"] == translator.text == "Hi there, friend."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert translator.usage == {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}


def test_cohere_single_event_stream_keeps_its_text():
    translator = cohere.CohereStreamTranslator(**META)
    chunks = translator.feed({"apiFormat": "COHERE", "text": "All at once", "finishReason": "MAX_TOKENS"})
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "All at once"}
    assert chunks[0]["choices"][0]["finish_reason"] == "length"


def test_cohere_terminal_carrying_an_unsent_tail():
    translator = cohere.CohereStreamTranslator(**META)
    translator.feed({"text": "Hello"})
    chunks = translator.feed({"text": "Hello world", "finishReason": "COMPLETE"})
    assert chunks[0]["choices"][0]["delta"] == {"content": " world"}
    assert translator.text == "Hello world"


def test_cohere_streamed_tool_calls_match_the_non_streamed_ids():
    translator, chunks = run("cohere_tools.sse", turn=3)
    streamed = _tool_view(accumulate(chunks))
    terminal = parse_event(decode_all(fixture_bytes("cohere_tools.sse"))[-1])
    assert streamed == _dict_view(cohere.chat_result_to_openai(terminal, **META, turn=3))
    assert len(streamed["calls"]) == 2 and streamed["content"] == "I will check the weather."
    assert streamed["finish"] == "tool_calls"
    assert translator.content_events == 3


def test_cohere_calls_only_on_the_terminal_event():
    translator = cohere.CohereStreamTranslator(**META)
    event = {
        "text": "",
        "toolCalls": [{"name": "f", "parameters": {}}, {"name": "f", "parameters": {}}],
        "finishReason": "COMPLETE",
    }
    calls = translator.feed(event)[0]["choices"][0]["delta"]["tool_calls"]
    assert [c["index"] for c in calls] == [0, 1] and calls[0]["id"] != calls[1]["id"]


def test_cohere_v2_text_and_thinking():
    translator, chunks = run("cohere_v2_text.sse")
    completion = accumulate(chunks)
    assert completion.choices[0].message.content == "Hi there!"
    assert completion.choices[0].message.model_extra["reasoning_content"] == "Greeting requested."
    assert translator.finished


def test_cohere_v2_tool_calls_reassemble():
    translator, chunks = run("cohere_v2_tools.sse")
    streamed = _tool_view(accumulate(chunks))
    assert streamed["calls"] == [
        ("get_weather_kq1", "get_weather", '{"city":"Paris"}'),
        ("get_time_zz2", "get_time", '{"tz":"CET"}'),
    ]
    assert streamed["finish"] == "tool_calls"
    assert streamed["reasoning"] == "I will look up the weather."
    # Usage arrived on a separate event after the finish.
    assert translator.usage == {"prompt_tokens": 40, "completion_tokens": 18, "total_tokens": 58}
    terminal = parse_event(decode_all(fixture_bytes("cohere_v2_tools.sse"))[-2])
    assert streamed["calls"] == _dict_view(cohere_v2.chat_result_to_openai(terminal, **META))["calls"]


def test_cohere_v2_terminal_restating_text():
    translator = cohere_v2.CohereV2StreamTranslator(**META)
    translator.feed({"message": {"content": [{"type": "TEXT", "text": "Hi"}]}})
    chunks = translator.feed(
        {"message": {"content": [{"type": "TEXT", "text": "Hi"}]}, "finishReason": "COMPLETE"}
    )
    assert chunks[0]["choices"][0]["delta"] == {}
    usage_on_finish = cohere_v2.CohereV2StreamTranslator(**META)
    usage_on_finish.feed(
        {"message": {}, "finishReason": "COMPLETE", "usage": {"promptTokens": 2, "completionTokens": 1}}
    )
    assert usage_on_finish.usage == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}


def test_openai_passthrough_stream():
    translator, chunks = run("openai_passthrough.sse")
    completion = accumulate(chunks)
    assert completion.choices[0].message.content == "Hello"
    assert completion.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert translator.usage == {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32}
    error = stream_translator("OPENAI", **META)
    assert error.feed({"error": {"message": "boom"}}) == [] and error.error == {"message": "boom"}


GENERIC_EDGE_EVENTS = [
    {"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "Hi"}]}},  # role chunk
    {"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": ' "quoted" \\ é 🙂'}]},
     "pad": "aaaa"},
    {"index": 0, "message": {"content": "a plain string"}},
    {"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "a"},
                                                              {"type": "TEXT", "text": "b"}]}},
    {"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "IMAGE", "url": "x"}]}},
    {"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": ""}]}},
    {"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "x"}],
                             "reasoningContent": "thinking"}},
    {"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "p"}]},
     "logprobs": {"tokens": ["p"], "tokenLogprobs": [-0.1]}},
    {"index": 1, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "second choice"}]}},
    {"index": 1, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "again"}]}},
    {"index": 0, "message": {"role": "ASSISTANT", "toolCalls": [{"id": "c1", "type": "FUNCTION", "name": "f",
                                                                 "arguments": "{}"}]}},
    {"index": 0, "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "end"}]},
     "finishReason": "stop"},
    {"usage": {"promptTokens": 3, "completionTokens": 9, "totalTokens": 12}},
]


@pytest.mark.parametrize("model", ["public", 'my "odd" \\ model', None])
def test_generic_encoded_chunks_are_the_bytes_of_the_chunks(model):
    """`feed_sse` takes a short road for text-only events; it must give exactly `feed` + `encode_sse`."""
    from api.translate.sse import encode_sse

    events = [parse_event(p) for p in decode_all(fixture_bytes("generic_text.sse"))]
    events = [e for e in events if e is not None] + GENERIC_EDGE_EVENTS
    meta = {**META, "model": model}
    fast, slow = generic.GenericStreamTranslator(**meta), generic.GenericStreamTranslator(**meta)
    built = []  # events for which the fast translator built chunk dicts
    fast.feed = lambda event: built.append(event) or generic.GenericStreamTranslator.feed(fast, event)
    for event in events:
        assert fast.feed_sse(orjson.loads(orjson.dumps(event))) == [encode_sse(c) for c in slow.feed(event)], event
    state = ("content_events", "output_chars", "finished", "finish_reason", "usage")
    assert [getattr(fast, a) for a in state] == [getattr(slow, a) for a in state]
    edge = GENERIC_EDGE_EVENTS
    assert edge[1] not in built and edge[2] not in built and edge[9] not in built  # text only: the short road
    assert edge[8] in built and edge[11] in built  # a choice's first chunk (role), a finish: built as dicts
