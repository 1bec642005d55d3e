"""Validation of OpenAI request bodies: one clear 400 naming the parameter."""

from __future__ import annotations

import orjson
import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsBase

from api.errors import GatewayError
from api.schemas import (
    ChatCompletionRequest,
    parse_chat_request,
    parse_completions_request,
    parse_embeddings_request,
    parse_rerank_request,
)

pytestmark = pytest.mark.smoke

USER = {"role": "user", "content": "hi"}


def err(raw, parser=parse_chat_request) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        parser(raw if isinstance(raw, bytes) else orjson.dumps(raw))
    assert info.value.status == 400
    assert info.value.type == "invalid_request_error"
    return info.value


def test_accepted_keys_are_the_openai_sdk_create_params():
    assert set(ChatCompletionRequest.model_fields) == set(CompletionCreateParamsBase.__annotations__) | {
        "stream"
    }


def test_valid_request_keeps_extras_and_raw():
    body = {"model": "m", "messages": [USER], "top_k": 5, "vendor": {"x": 1}, "stream": True}
    req = parse_chat_request(orjson.dumps(body))
    assert req.extras == {"top_k": 5, "vendor": {"x": 1}}
    assert req.raw == body
    assert req.messages[0].content == "hi"


def test_invalid_json():
    e = err(b"{")
    assert e.message.startswith("Invalid JSON body: ")
    assert err(b"[1]").message == "Invalid JSON body: expected a JSON object"


@pytest.mark.parametrize("missing", ["model", "messages"])
def test_missing_required(missing):
    body = {"model": "m", "messages": [USER]}
    del body[missing]
    e = err(body)
    assert e.param == missing
    assert e.message == f"Missing required parameter: '{missing}'."


@pytest.mark.parametrize(
    ("messages", "param", "text"),
    [
        (
            [USER, {"role": "assistant", "content": None}, {"role": "user", "content": 5}],
            "messages[2].content",
            "expected a string or a list of content parts",
        ),
        (
            [{"role": "user", "content": [{"type": "video", "url": "x"}]}],
            "messages[0].content[0]",
            "expected a content part with type",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            "messages[0].content[0].image_url.url",
            "Missing required parameter",
        ),
        ([{"role": "bot", "content": "x"}], "messages[0]", "expected a message object with role"),
        (["hello"], "messages[0]", "expected a message object with role"),
        ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role", "legacy 'function' role"),
        ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id", "Missing required parameter"),
        (
            [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {}}]}],
            "messages[0].tool_calls[0].function.name",
            "Missing required parameter",
        ),
        ([], "messages", "must not be empty"),
    ],
)
def test_message_errors_name_the_parameter(messages, param, text):
    e = err({"model": "m", "messages": messages})
    assert e.param == param
    assert text in e.message
    if "Missing" not in text:
        assert e.message.startswith(f"{param}: ")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "any"}, "tool_choice"),
        ({"tool_choice": {"type": "function"}}, "tool_choice"),
        ({"stop": [1]}, "stop"),
        ({"temperature": "hot"}, "temperature"),
        ({"reasoning_effort": "huge"}, "reasoning_effort"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"metadata": {"a": 1}}, "metadata.a"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format.json_schema.name"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "web"}]}, "tools[0]"),
        ({"stream_options": {"include_usage": "maybe"}}, "stream_options.include_usage"),
        ({"model": ""}, "model"),
    ],
)
def test_parameter_errors(extra, param):
    e = err({"model": "m", "messages": [USER], **extra})
    assert e.param == param


def test_lenient_forms():
    req = parse_chat_request(
        orjson.dumps(
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": "data:image/png;base64,AA"}],
                    },
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}],
                    },
                ],
                "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
            }
        )
    )
    assert req.messages[0].content[0].image_url.url.startswith("data:")
    call = req.messages[1].tool_calls[0]
    assert call.type == "function" and call.function.arguments == '{"a":1}'


def test_embeddings():
    req = parse_embeddings_request(b'{"model": "e", "input": "hello", "dimensions": 256}')
    assert req.inputs == ["hello"]
    assert parse_embeddings_request(b'{"model": "e", "input": ["a", "b"]}').inputs == ["a", "b"]
    assert "token arrays" in err({"model": "e", "input": [[1, 2]]}, parse_embeddings_request).message
    assert err({"model": "e", "input": []}, parse_embeddings_request).param == "input"
    assert err({"model": "e", "input": ["a", ""]}, parse_embeddings_request).message == (
        "input: item 1 must not be an empty string"
    )
    assert err({"model": "e", "input": "x", "encoding_format": "hex"}, parse_embeddings_request).param == (
        "encoding_format"
    )
    assert err({"model": "e"}, parse_embeddings_request).param == "input"


def test_rerank():
    body = {
        "model": "r",
        "query": "q",
        "documents": ["a", {"text": "b"}],
        "top_n": 1,
        "return_documents": True,
    }
    req = parse_rerank_request(orjson.dumps(body))
    assert req.texts() == ["a", "b"]
    assert err({"model": "r", "query": "q", "documents": [1]}, parse_rerank_request).param == "documents[0]"
    assert err({"model": "r", "query": "q", "documents": [{}]}, parse_rerank_request).param == (
        "documents[0].text"
    )
    assert err({"model": "r", "query": "q", "documents": []}, parse_rerank_request).param == "documents"
    assert err({"model": "r", "documents": ["a"]}, parse_rerank_request).param == "query"


def test_completions():
    req = parse_completions_request(b'{"model": "c", "prompt": "Say hi", "max_tokens": 5, "echo": false}')
    assert req.prompts == ["Say hi"]
    assert err({"model": "c"}, parse_completions_request).param == "prompt"
    assert err({"model": "c", "prompt": "x", "logprobs": 9}, parse_completions_request).param == "logprobs"
