"""OpenAI request → OCI COHEREV2 chatRequest."""

from __future__ import annotations

import pytest

from api.errors import GatewayError
from api.translate.cohere_v2 import COHEREV2_FIELDS, chat_request_to_oci
from tests.translate.helpers import TIME_TOOL, USER, WEATHER_TOOL, chat, opts
from tests.translate.sdk_check import assert_sdk_valid

pytestmark = pytest.mark.smoke

COMMAND_A = opts("cohere.command-a-03-2025", api_format="COHEREV2")


def translate(o=COMMAND_A, **body):
    out = chat_request_to_oci(chat(**body), o)
    assert_sdk_valid(out.chat_request)
    return out


def test_messages_with_required_fields():
    out = translate(
        messages=[
            {"role": "system", "content": "sys"},
            USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                ],
                "reasoning_content": "need time",
            },
            {"role": "tool", "tool_call_id": "t1", "content": "noon"},
            {"role": "assistant", "content": "It is noon."},
            {"role": "user", "content": "ok"},
        ],
        stream=True,
        max_tokens=300,
        stop=["x"],
        seed=1,
    )
    body = out.chat_request
    assert body["messages"] == [
        {"role": "SYSTEM", "content": [{"type": "TEXT", "text": "sys"}]},
        {"role": "USER", "content": [{"type": "TEXT", "text": "Hello"}]},
        {
            "role": "ASSISTANT",
            "content": [{"type": "THINKING", "thinking": "need time"}],
            "toolCalls": [
                {"id": "t1", "type": "FUNCTION", "function": {"name": "get_time", "arguments": "{}"}}
            ],
        },
        {"role": "TOOL", "toolCallId": "t1", "content": [{"type": "TEXT", "text": "noon"}]},
        {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "It is noon."}]},
        {"role": "USER", "content": [{"type": "TEXT", "text": "ok"}]},
    ]
    assert body["isStream"] is True and body["streamOptions"] == {"isIncludeUsage": True}
    assert body["maxTokens"] == 300 and body["stopSequences"] == ["x"] and body["seed"] == 1


def test_assistant_tool_call_turn_has_content_even_when_empty():
    msg = translate(
        messages=[
            USER,
            {
                "role": "assistant",
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}],
            },
            {"role": "tool", "tool_call_id": "t1", "content": ""},
        ]
    ).chat_request["messages"]
    assert msg[1]["content"] == [] and msg[1]["toolCalls"][0]["function"]["arguments"] == "{}"
    assert msg[2] == {"role": "TOOL", "toolCallId": "t1", "content": [{"type": "TEXT", "text": ""}]}


@pytest.mark.parametrize(
    ("choice", "expected", "names"),
    [
        ("auto", None, ["get_weather", "get_time"]),
        ("none", "NONE", ["get_weather", "get_time"]),
        ("required", "REQUIRED", ["get_weather", "get_time"]),
        ({"type": "function", "function": {"name": "get_time"}}, "REQUIRED", ["get_time"]),
    ],
)
def test_tools_choice(choice, expected, names):
    body = translate(tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice).chat_request
    assert body.get("toolsChoice") == expected
    assert [t["function"]["name"] for t in body["tools"]] == names
    assert all(t["type"] == "FUNCTION" for t in body["tools"])


def test_tool_definition_and_strict():
    strict = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": True}}
    body = translate(tools=[strict]).chat_request
    assert body["tools"] == [
        {
            "type": "FUNCTION",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["function"]["parameters"],
                "description": "Current weather",
            },
        }
    ]
    assert body["isStrictToolsEnabled"] is True


def test_vision_only_with_vision_deployments():
    image = {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "auto"}}
        ],
    }
    vision = opts("cohere.command-a-vision", api_format="COHEREV2", supports_vision=True)
    assert translate(vision, messages=[image]).chat_request["messages"][0]["content"] == [
        {"type": "IMAGE_URL", "imageUrl": {"url": "data:image/png;base64,AA", "detail": "AUTO"}}
    ]
    with pytest.raises(GatewayError) as e:
        translate(messages=[image])
    assert e.value.param == "messages[0].content[0]"
    audio = {
        "role": "user",
        "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}],
    }
    with pytest.raises(GatewayError):
        translate(vision, messages=[audio])


def test_thinking_for_reasoning_models():
    reasoning = opts("cohere.command-a-reasoning", api_format="COHEREV2", supports_reasoning=True)
    assert translate(reasoning, reasoning_effort="high").chat_request["thinking"] == {"type": "ENABLED"}
    assert translate(reasoning, reasoning_effort="none").chat_request["thinking"] == {"type": "DISABLED"}
    body = translate(reasoning, thinking={"type": "enabled", "budget_tokens": 2048}).chat_request
    assert body["thinking"] == {"type": "ENABLED", "tokenBudget": 2048}
    out = translate(reasoning_effort="high")
    assert "thinking" not in out.chat_request and out.dropped == ["reasoning_effort"]


def test_response_format_and_drops():
    schema = {"type": "object"}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    out = translate(response_format=fmt, logprobs=True, n=3, parallel_tool_calls=False, tools=[WEATHER_TOOL])
    assert out.chat_request["responseFormat"] == {"type": "JSON_OBJECT", "schema": schema}
    assert set(out.dropped) == {"logprobs", "n", "parallel_tool_calls"}
    assert translate(response_format={"type": "json_object"}).chat_request["responseFormat"] == {
        "type": "JSON_OBJECT"
    }


def test_no_cohere_v1_cap_by_default():
    assert "maxTokens" not in translate().chat_request
    assert translate(max_tokens=8000).chat_request["maxTokens"] == 8000


def test_cohere_v2_fields_match_the_sdk():
    import oci.generative_ai_inference.models as m

    assert set(m.CohereChatRequestV2().attribute_map.values()) == COHEREV2_FIELDS
