"""OpenAI request → OCI GENERIC chatRequest."""

from __future__ import annotations

import pytest

from api.errors import GatewayError
from api.translate.generic import GENERIC_FIELDS, chat_request_to_oci
from tests.translate.helpers import TIME_TOOL, USER, WEATHER_TOOL, chat, opts
from tests.translate.sdk_check import assert_sdk_valid

pytestmark = pytest.mark.smoke


def translate(o=None, **body):
    out = chat_request_to_oci(chat(**body), o or opts())
    assert_sdk_valid(out.chat_request)
    return out


def test_minimal_request():
    out = translate()
    assert out.chat_request == {
        "apiFormat": "GENERIC",
        "messages": [{"role": "USER", "content": [{"type": "TEXT", "text": "Hello"}]}],
    }
    assert out.dropped == [] and out.stream is False and out.max_tokens is None and out.turn == 0


def test_stream_always_requests_usage():
    out = translate(stream=True)
    assert out.chat_request["isStream"] is True
    assert out.chat_request["streamOptions"] == {"isIncludeUsage": True}
    out = translate(stream=True, stream_options={"include_usage": False})
    assert out.chat_request["streamOptions"] == {"isIncludeUsage": True}
    assert out.dropped == []


def test_sampling_parameters():
    body = translate(
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        frequency_penalty=0.1,
        presence_penalty=0.3,
        seed=7,
        n=3,
        stop="END",
        logit_bias={"50256": -100},
        logprobs=True,
        top_logprobs=4,
        metadata={"k": "v"},
        verbosity="high",
        service_tier="priority",
    ).chat_request
    assert body["temperature"] == 0.2 and body["topP"] == 0.9 and body["topK"] == 40
    assert body["frequencyPenalty"] == 0.1 and body["presencePenalty"] == 0.3 and body["seed"] == 7
    assert body["numGenerations"] == 3
    assert body["stop"] == ["END"]
    assert body["logitBias"] == {"50256": -100}
    assert body["logProbs"] == 4
    assert body["metadata"] == {"k": "v"}
    assert body["verbosity"] == "HIGH"
    assert body["serviceTier"] == "PRIORITY"


def test_small_parameter_rules():
    assert translate(stop=["a", "b"]).chat_request["stop"] == ["a", "b"]
    assert "numGenerations" not in translate(n=1).chat_request
    assert translate(logprobs=True).chat_request["logProbs"] == 1
    assert translate(service_tier="fast").chat_request["serviceTier"] == "PRIORITY"
    out = translate(service_tier="flex")
    assert "serviceTier" not in out.chat_request and out.dropped == ["service_tier"]
    with pytest.raises(GatewayError) as e:
        translate(top_logprobs=2)
    assert e.value.param == "top_logprobs"


def test_reasoning_effort_only_for_reasoning_deployments():
    out = translate(opts("xai.grok-4"), reasoning_effort="low")
    assert "reasoningEffort" not in out.chat_request and out.dropped == ["reasoning_effort"]
    o = opts("openai.gpt-5", supports_reasoning=True)
    assert translate(o, reasoning_effort="minimal").chat_request["reasoningEffort"] == "MINIMAL"
    assert translate(o, reasoning_effort="none").chat_request["reasoningEffort"] == "NONE"
    assert translate(o, reasoning_effort="xhigh").chat_request["reasoningEffort"] == "HIGH"


def test_web_search_and_prediction():
    body = translate(
        web_search_options={
            "search_context_size": "medium",
            "user_location": {"type": "approximate", "approximate": {"city": "Paris", "country": "FR"}},
        },
        prediction={"type": "content", "content": [{"type": "text", "text": "draft"}]},
    ).chat_request
    assert body["webSearchOptions"] == {
        "searchContextSize": "MEDIUM",
        "userLocation": {"city": "Paris", "country": "FR"},
    }
    assert body["prediction"] == {"type": "CONTENT", "content": [{"type": "TEXT", "text": "draft"}]}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "text"}, {"type": "TEXT"}),
        ({"type": "json_object"}, {"type": "JSON_OBJECT"}),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "description": "d",
                    "schema": {"type": "object"},
                    "strict": True,
                },
            },
            {
                "type": "JSON_SCHEMA",
                "jsonSchema": {
                    "name": "x",
                    "description": "d",
                    "schema": {"type": "object"},
                    "isStrict": True,
                },
            },
        ),
    ],
)
def test_response_format(fmt, expected):
    assert translate(response_format=fmt).chat_request["responseFormat"] == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "AUTO"}),
        ("none", {"type": "NONE"}),
        ("required", {"type": "REQUIRED"}),
        ({"type": "function", "function": {"name": "get_time"}}, {"type": "FUNCTION", "name": "get_time"}),
    ],
)
def test_tool_choice_four_forms(choice, expected):
    body = translate(
        tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice, parallel_tool_calls=False
    ).chat_request
    assert body["toolChoice"] == expected
    assert body["isParallelToolCalls"] is False
    assert [t["name"] for t in body["tools"]] == ["get_weather", "get_time"]


def test_tool_choice_absent_is_not_sent_and_named_unknown_is_400():
    assert "toolChoice" not in translate(tools=[WEATHER_TOOL]).chat_request
    with pytest.raises(GatewayError) as e:
        translate(tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "nope"}})
    assert e.value.param == "tool_choice"


def test_allowed_tools_filters_the_tool_list():
    body = translate(
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": "required",
                "tools": [{"type": "function", "function": {"name": "get_time"}}],
            },
        },
    ).chat_request
    assert [t["name"] for t in body["tools"]] == ["get_time"]
    assert body["toolChoice"] == {"type": "REQUIRED"}


def test_tools_are_flat_without_strict():
    strict = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": True}}
    tool = translate(tools=[strict]).chat_request["tools"][0]
    assert tool == {
        "type": "FUNCTION",
        "name": "get_weather",
        "description": "Current weather",
        "parameters": WEATHER_TOOL["function"]["parameters"],
    }


def test_legacy_functions_become_tools():
    body = translate(functions=[WEATHER_TOOL["function"]], function_call={"name": "get_weather"}).chat_request
    assert body["tools"][0]["name"] == "get_weather"
    assert body["toolChoice"] == {"type": "FUNCTION", "name": "get_weather"}


def test_tool_schema_cleaning():
    params = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Args",
        "type": "object",
        "$defs": {
            "Addr": {"title": "Addr", "type": "object", "properties": {"city": {"type": "string"}}},
            "Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}},
        },
        "properties": {
            "title": {"title": "Title", "type": "string"},
            "addr": {"$ref": "#/$defs/Addr", "description": "where"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "count": {"type": ["integer", "null"]},
            "tags": {"type": "array"},
            "tree": {"$ref": "#/$defs/Node"},
            "both": {
                "allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}]
            },
            "extra": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["addr", "ghost"],
        "additionalProperties": False,
    }
    tool = {"type": "function", "function": {"name": "f", "parameters": params}}
    cleaned = translate(tools=[tool]).chat_request["tools"][0]["parameters"]
    assert cleaned == {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "addr": {"type": "object", "properties": {"city": {"type": "string"}}, "description": "where"},
            "note": {"type": "string"},
            "count": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "tree": {"type": "object", "properties": {"child": {"type": "object"}}},
            "both": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            "extra": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["addr"],
        "additionalProperties": False,
    }
    assert "$ref" not in str(cleaned) and "anyOf" not in str(cleaned)


def test_tool_without_parameters_gets_an_empty_object_schema():
    tool = {"type": "function", "function": {"name": "ping"}}
    assert translate(tools=[tool]).chat_request["tools"][0]["parameters"] == {
        "type": "object",
        "properties": {},
    }


def test_custom_tools_are_dropped_or_rejected():
    custom = {"type": "custom", "custom": {"name": "grammar"}}
    out = translate(tools=[custom, WEATHER_TOOL])
    assert [t["name"] for t in out.chat_request["tools"]] == ["get_weather"] and out.dropped == ["tools"]
    with pytest.raises(GatewayError) as e:
        translate(opts(unsupported_params="reject"), tools=[custom])
    assert e.value.param == "tools[0]"


def test_tools_on_a_model_without_tool_support():
    out = translate(opts(supports_tools=False), tools=[WEATHER_TOOL], tool_choice="auto")
    assert "tools" not in out.chat_request and "toolChoice" not in out.chat_request
    assert out.dropped == ["tools", "tool_choice"]
    with pytest.raises(GatewayError) as e:
        translate(opts(supports_tools=False, unsupported_params="reject"), tools=[WEATHER_TOOL])
    assert e.value.status == 400 and e.value.param == "tools"


@pytest.mark.parametrize(
    ("o", "body", "field", "value"),
    [
        (opts(default_max_tokens=4096), {}, "maxTokens", 4096),
        (opts(default_max_tokens=4096, max_output_tokens=2048), {}, "maxTokens", 2048),
        (opts(default_max_tokens=4096), {"max_tokens": 100}, "maxTokens", 100),
        (opts(max_output_tokens=500), {"max_tokens": 10_000}, "maxTokens", 500),
        (opts(), {"max_completion_tokens": 50, "max_tokens": 70}, "maxTokens", 50),
        (opts("openai.gpt-5-mini", default_max_tokens=4096), {}, "maxCompletionTokens", 4096),
        (opts("openai.o3"), {"max_tokens": 10}, "maxCompletionTokens", 10),
        (opts("openai.o4-mini"), {"max_tokens": 10}, "maxCompletionTokens", 10),
        (opts("openai.gpt-oss-120b"), {"max_tokens": 10}, "maxTokens", 10),
        (
            opts("ocid1.generativeaiendpoint.oc1..x", max_tokens_field="maxCompletionTokens"),
            {"max_tokens": 9},
            "maxCompletionTokens",
            9,
        ),
        (opts("openai.gpt-5", max_tokens_field=""), {"max_tokens": 9}, "maxCompletionTokens", 9),
    ],
)
def test_output_length_default_cap_and_field(o, body, field, value):
    out = translate(o, **body)
    assert out.chat_request[field] == value and out.max_tokens == value
    other = {"maxTokens", "maxCompletionTokens"} - {field}
    assert not other & out.chat_request.keys()


def test_no_output_length_when_nothing_says_one():
    assert {"maxTokens", "maxCompletionTokens"}.isdisjoint(translate().chat_request)


def test_param_defaults_fill_only_what_the_client_did_not_send():
    o = opts(param_defaults={"temperature": 0.3, "top_k": 20, "isEcho": False, "unknownField": 1})
    body = translate(o, top_p=0.5).chat_request
    assert body["temperature"] == 0.3 and body["topK"] == 20 and body["topP"] == 0.5
    assert body["isEcho"] is False and "unknownField" not in body
    assert translate(o, temperature=1.0).chat_request["temperature"] == 1.0


def test_messages_roles_and_parts():
    o = opts(supports_vision=True)
    body = translate(
        o,
        messages=[
            {"role": "system", "content": "sys", "name": "boss"},
            {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "JVBER", "filename": "a.pdf"}},
                    {"type": "file", "file": {"file_data": "data:text/plain;base64,aGk="}},
                ],
            },
        ],
    ).chat_request
    system, developer, user = body["messages"]
    assert system == {"role": "SYSTEM", "content": [{"type": "TEXT", "text": "sys"}], "name": "boss"}
    assert developer == {"role": "DEVELOPER", "content": [{"type": "TEXT", "text": "dev"}]}
    assert user["content"] == [
        {"type": "TEXT", "text": "look"},
        {"type": "IMAGE", "imageUrl": {"url": "data:image/png;base64,AAA", "detail": "LOW"}},
        {"type": "IMAGE", "imageUrl": {"url": "https://example.com/a.png"}},
        {"type": "AUDIO", "audioUrl": {"url": "data:audio/wav;base64,UklG"}},
        {"type": "DOCUMENT", "documentUrl": {"url": "data:application/pdf;base64,JVBER"}},
        {"type": "DOCUMENT", "documentUrl": {"url": "data:text/plain;base64,aGk="}},
    ]


def test_image_without_vision_names_the_part():
    with pytest.raises(GatewayError) as e:
        translate(
            messages=[
                USER,
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "x"},
                        {"type": "image_url", "image_url": {"url": "data:,"}},
                    ],
                },
            ]
        )
    assert e.value.status == 400
    assert e.value.param == "messages[1].content[1]"
    assert e.value.message.startswith("messages[1].content[1]: ")


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            "messages[0].content[0]",
        ),
        (
            {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]},
            "messages[0].content[0]",
        ),
        ({"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}, "messages[0].content[0]"),
        (
            {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
            "messages[0].function_call",
        ),
        (
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "g"}}]},
            "messages[0].tool_calls[0]",
        ),
    ],
)
def test_content_rules(message, param):
    with pytest.raises(GatewayError) as e:
        translate(opts(supports_vision=True), messages=[message])
    assert e.value.param == param


def test_assistant_tool_calls_and_tool_results():
    out = translate(
        messages=[
            USER,
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    },
                    {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "12C"},
            {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "noon"}]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Done"}, {"type": "refusal", "refusal": "r"}],
                "reasoning_content": "thought",
            },
        ]
    )
    _, assistant, tool_a, tool_b, final = out.chat_request["messages"]
    assert assistant == {
        "role": "ASSISTANT",
        "toolCalls": [
            {"id": "call_a", "type": "FUNCTION", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
            {"id": "call_b", "type": "FUNCTION", "name": "get_time", "arguments": "{}"},
        ],
    }
    assert "content" not in assistant  # null, which the SDK omits on the wire: never ""
    assert tool_a == {"role": "TOOL", "content": [{"type": "TEXT", "text": "12C"}], "toolCallId": "call_a"}
    assert tool_b["content"] == [{"type": "TEXT", "text": "noon"}]
    assert final == {
        "role": "ASSISTANT",
        "content": [{"type": "TEXT", "text": "Done"}],
        "refusal": "r",
        "reasoningContent": "thought",
    }
    assert out.turn == 2


def test_dropped_parameters_and_reject_mode():
    out = translate(
        user="u",
        store=True,
        safety_identifier="s",
        prompt_cache_key="k",
        audio={"voice": "alloy"},
        modalities=["text", "audio"],
        moderation={"model": "m"},
        vendor_thing=1,
        top_k=3,
    )
    assert set(out.dropped) == {
        "user",
        "store",
        "safety_identifier",
        "prompt_cache_key",
        "audio",
        "modalities",
        "moderation",
        "vendor_thing",
    }
    strict = opts(unsupported_params="reject")
    # Advisory parameters and unknown extras are listed, never rejected; store=false loses nothing.
    assert set(translate(strict, user="u", store=False, vendor_thing=1).dropped) == {"user", "vendor_thing"}
    with pytest.raises(GatewayError) as e:
        translate(strict, audio={"voice": "alloy"})
    assert e.value.param == "audio"


def test_modalities_text_only_is_fine():
    assert translate(modalities=["text"]).dropped == []


def test_generic_fields_match_the_sdk():
    import oci.generative_ai_inference.models as m

    assert set(m.GenericChatRequest().attribute_map.values()) == GENERIC_FIELDS
