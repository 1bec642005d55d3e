"""Upstream results → OpenAI chat.completion (non-streamed), finish reasons and usage."""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletion

from api.translate import cohere, cohere_v2, generic, openai_passthrough
from api.translate.common import synth_call_id, usage_to_openai
from api.translate.finish import map_finish_reason

pytestmark = pytest.mark.smoke

META = {"model": "public", "completion_id": "chatcmpl-abc", "created": 1700000000}


@pytest.mark.parametrize(
    ("raw", "tools", "expected"),
    [
        ("stop", False, "stop"),
        ("COMPLETE", False, "stop"),
        ("complete", False, "stop"),
        ("STOP_SEQUENCE", False, "stop"),
        ("length", False, "length"),
        ("max_tokens", False, "length"),
        ("MAX_TOKENS", False, "length"),
        ("tool_calls", False, "tool_calls"),
        ("TOOL_CALLS", False, "tool_calls"),
        ("TOOL_CALL", False, "tool_calls"),
        ("tool_use", False, "tool_calls"),
        ("content_filter", False, "content_filter"),
        ("ERROR_TOXIC", False, "content_filter"),
        ("ERROR", False, "stop"),
        ("ERROR_SOMETHING_NEW", False, "stop"),
        ("USER_CANCEL", False, "stop"),
        ("ERROR_LIMIT", False, "length"),
        ("RECITATION", False, "stop"),
        ("stop", True, "tool_calls"),
        ("COMPLETE", True, "tool_calls"),
        ("length", True, "length"),
        (None, False, None),
    ],
)
def test_finish_reasons_case_insensitive(raw, tools, expected):
    assert map_finish_reason(raw, has_tool_calls=tools) == expected


def test_usage_details():
    assert usage_to_openai(None) is None
    assert usage_to_openai(
        {
            "promptTokens": 10,
            "completionTokens": 5,
            "totalTokens": 15,
            "promptTokensDetails": {"cachedTokens": 4},
            "completionTokensDetails": {"reasoningTokens": 3, "acceptedPredictionTokens": 1},
        }
    ) == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 3, "accepted_prediction_tokens": 1},
    }
    # Reasoning models that spent the budget thinking may omit completionTokens.
    assert usage_to_openai({"promptTokens": 10, "totalTokens": 30}) == {
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "total_tokens": 30,
    }


def test_generic_text_result():
    result = {
        "modelId": "meta.llama-3.3-70b-instruct",
        "modelVersion": "1.0.0",
        "chatResponse": {
            "apiFormat": "GENERIC",
            "timeCreated": "2025-05-01T10:00:00Z",
            "choices": [
                {
                    "finishReason": "stop",
                    "index": 0,
                    "message": {
                        "role": "ASSISTANT",
                        "content": [{"type": "TEXT", "text": "Hello"}, {"type": "TEXT", "text": " world"}],
                        "toolCalls": [],
                        "annotations": [
                            {
                                "type": "url_citation",
                                "urlCitation": {"startIndex": 0, "endIndex": 5, "title": "t", "url": "u"},
                            }
                        ],
                    },
                    "logprobs": {
                        "tokens": ["Hello"],
                        "tokenLogprobs": [-0.1],
                        "topLogprobs": [{"Hello": "-0.1", "Hi": "-2.5"}],
                    },
                }
            ],
            "usage": {"completionTokens": 8, "promptTokens": 45, "totalTokens": 53},
            "serviceTier": "DEFAULT",
        },
    }
    out = generic.chat_result_to_openai(result, **META)
    ChatCompletion.model_validate(out)
    assert out["id"] == "chatcmpl-abc" and out["object"] == "chat.completion" and out["model"] == "public"
    assert out["created"] == 1700000000 and out["service_tier"] == "default"
    (choice,) = out["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == "Hello world" and "tool_calls" not in choice["message"]
    assert choice["message"]["annotations"][0]["url_citation"]["start_index"] == 0
    assert choice["logprobs"]["content"][0]["token"] == "Hello"
    assert choice["logprobs"]["content"][0]["top_logprobs"][1] == {
        "token": "Hi",
        "logprob": -2.5,
        "bytes": [72, 105],
    }
    assert out["usage"] == {"prompt_tokens": 45, "completion_tokens": 8, "total_tokens": 53}


def test_generic_tool_calls_reasoning_and_missing_ids():
    response = {
        "apiFormat": "GENERIC",
        "choices": [
            {
                "index": 0,
                "finishReason": "STOP",
                "message": {
                    "role": "ASSISTANT",
                    "reasoningContent": "thinking",
                    "toolCalls": [
                        {"id": "call_1", "type": "FUNCTION", "name": "a", "arguments": '{"x":1}'},
                        {"type": "FUNCTION", "name": "b", "arguments": "{}"},
                    ],
                },
            }
        ],
    }
    out = generic.chat_result_to_openai(response, **META)
    ChatCompletion.model_validate(out)
    message = out["choices"][0]["message"]
    assert message["content"] is None
    assert message["reasoning_content"] == "thinking"
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": '{"x":1}'}},
        {
            "id": synth_call_id("chatcmpl-abc", 0, 1),
            "type": "function",
            "function": {"name": "b", "arguments": "{}"},
        },
    ]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"] is None
    # Deterministic: the same response maps to the same ids.
    assert generic.chat_result_to_openai(response, **META) == out


def test_generic_result_without_message_or_choices_usage():
    out = generic.chat_result_to_openai(
        {"choices": [{"index": 0, "finishReason": "length", "usage": {"promptTokens": 3, "totalTokens": 9}}]},
        **META,
    )
    assert out["choices"][0]["message"] == {"role": "assistant", "content": ""}
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"]["completion_tokens"] == 6


def test_cohere_result_with_tool_calls():
    result = {
        "chatResponse": {
            "apiFormat": "COHERE",
            "text": "",
            "finishReason": "COMPLETE",
            "toolCalls": [
                {"name": "get_weather", "parameters": {"city": "Paris", "unit": "C"}},
                {"name": "get_weather", "parameters": {"unit": "C", "city": "Rome"}},
            ],
            "usage": {"promptTokens": 10, "completionTokens": 4, "totalTokens": 14},
        }
    }
    out = cohere.chat_result_to_openai(result, **META, turn=2)
    ChatCompletion.model_validate(out)
    calls = out["choices"][0]["message"]["tool_calls"]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["choices"][0]["message"]["content"] is None
    assert calls[0]["id"] == cohere.cohere_call_id(2, 0, "get_weather", {"unit": "C", "city": "Paris"})
    assert calls[0]["id"] != calls[1]["id"]
    assert calls[0]["id"].startswith("call_") and len(calls[0]["id"]) == 29
    assert calls[1]["function"] == {"name": "get_weather", "arguments": '{"city":"Rome","unit":"C"}'}
    # Another replica (or a replay) computes the same ids; another turn gives other ids.
    assert (
        cohere.chat_result_to_openai(result, **META, turn=2)["choices"][0]["message"]["tool_calls"] == calls
    )
    other_turn = cohere.chat_result_to_openai(result, **META, turn=3)["choices"][0]["message"]["tool_calls"]
    assert other_turn[0]["id"] != calls[0]["id"]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("COMPLETE", "stop"),
        ("MAX_TOKENS", "length"),
        ("ERROR_TOXIC", "content_filter"),
        ("ERROR", "stop"),
        ("USER_CANCEL", "stop"),
        ("ERROR_LIMIT", "length"),
    ],
)
def test_cohere_finish_reasons(reason, expected):
    out = cohere.chat_result_to_openai({"text": "x", "finishReason": reason}, **META)
    assert out["choices"][0]["finish_reason"] == expected
    assert out["choices"][0]["message"]["content"] == "x"


def test_cohere_v2_result():
    result = {
        "chatResponse": {
            "apiFormat": "COHEREV2",
            "id": "c2",
            "message": {
                "role": "ASSISTANT",
                "content": [{"type": "THINKING", "thinking": "hmm"}, {"type": "TEXT", "text": "Sure."}],
                "toolPlan": "Call the tool.",
                "toolCalls": [
                    {"id": "t1", "type": "FUNCTION", "function": {"name": "f", "arguments": '{"a":1}'}},
                    {"type": "FUNCTION", "function": {"name": "g", "arguments": {"b": 2}}},
                ],
            },
            "finishReason": "TOOL_CALL",
            "usage": {"promptTokens": 1, "completionTokens": 2, "totalTokens": 3},
        }
    }
    out = cohere_v2.chat_result_to_openai(result, **META)
    ChatCompletion.model_validate(out)
    message = out["choices"][0]["message"]
    assert message["content"] == "Sure."
    assert message["reasoning_content"] == "hmm\nCall the tool."
    assert message["tool_calls"][1] == {
        "id": synth_call_id("chatcmpl-abc", 0, 1),
        "type": "function",
        "function": {"name": "g", "arguments": '{"b":2}'},
    }
    assert out["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
        ("TOOL_CALL", "tool_calls"),
        ("ERROR", "stop"),
    ],
)
def test_cohere_v2_finish_reasons(reason, expected):
    out = cohere_v2.chat_result_to_openai({"message": {"content": []}, "finishReason": reason}, **META)
    assert out["choices"][0]["finish_reason"] == expected


def test_openai_passthrough_result():
    upstream = {
        "id": "chatcmpl-upstream",
        "object": "chat.completion",
        "created": 1,
        "model": "odsc-llm",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    out = openai_passthrough.chat_result_to_openai(upstream, **META)
    ChatCompletion.model_validate(out)
    assert out["id"] == "chatcmpl-abc" and out["model"] == "public" and out["created"] == 1700000000
    assert out["choices"][0]["message"]["tool_calls"][0]["id"] == synth_call_id("chatcmpl-abc", 0, 0)
    assert out["usage"] == upstream["usage"]
