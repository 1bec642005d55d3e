"""OpenAI request → OpenAI-format upstream (Data Science vLLM, OCI /openai/v1)."""

from __future__ import annotations

import pytest

from api.errors import GatewayError
from api.translate.openai_passthrough import chat_request_to_oci
from tests.translate.helpers import WEATHER_TOOL, chat, opts

pytestmark = pytest.mark.smoke

VLLM = opts("odsc-llm", api_format="OPENAI", default_max_tokens=1024, max_output_tokens=2048)


def test_body_is_forwarded_with_model_usage_and_length():
    req = chat(stream=True, stream_options={"include_obfuscation": False}, top_k=5, user="u", temperature=0.1)
    out = chat_request_to_oci(req, VLLM)
    assert out.chat_request == {
        "model": "odsc-llm",
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": True,
        "stream_options": {"include_obfuscation": False, "include_usage": True},
        "top_k": 5,
        "user": "u",
        "temperature": 0.1,
        "max_tokens": 1024,
    }
    assert out.dropped == [] and out.stream and out.max_tokens == 1024
    assert req.raw["model"] == "public-model"  # the client's body is not modified


def test_cap_keeps_the_clients_field_name():
    out = chat_request_to_oci(chat(max_completion_tokens=9999), VLLM)
    assert out.chat_request["max_completion_tokens"] == 2048 and "max_tokens" not in out.chat_request
    gpt5 = opts("openai.gpt-5", api_format="OPENAI", default_max_tokens=100)
    assert chat_request_to_oci(chat(), gpt5).chat_request["max_completion_tokens"] == 100


def test_stream_options_removed_when_not_streaming():
    out = chat_request_to_oci(chat(stream_options={"include_usage": True}), VLLM)
    assert "stream_options" not in out.chat_request


def test_capability_rules():
    no_tools = opts("odsc-llm", api_format="OPENAI", supports_tools=False)
    out = chat_request_to_oci(
        chat(tools=[WEATHER_TOOL], tool_choice="auto", reasoning_effort="low"), no_tools
    )
    assert "tools" not in out.chat_request and "reasoning_effort" not in out.chat_request
    assert out.dropped == ["tools", "tool_choice", "reasoning_effort"]
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}
    with pytest.raises(GatewayError) as e:
        chat_request_to_oci(chat(messages=[image]), VLLM)
    assert e.value.param == "messages[0].content[0]"


def test_defaults_fill_absent_keys():
    o = opts("odsc-llm", api_format="OPENAI", param_defaults={"temperature": 0.2, "repetition_penalty": 1.1})
    body = chat_request_to_oci(chat(temperature=0.9), o).chat_request
    assert body["temperature"] == 0.9 and body["repetition_penalty"] == 1.1


def test_request_built_without_the_parser_still_forwards_its_body():
    from api.schemas import ChatCompletionRequest

    req = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "top_k": 2,
        }
    )
    body = chat_request_to_oci(req, VLLM).chat_request
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert body["top_k"] == 2 and body["model"] == "odsc-llm"
