"""OpenAI request → OCI COHERE (v1) chatRequest, and the tool-call id round trip."""

from __future__ import annotations

import orjson
import pytest

from api.errors import GatewayError
from api.translate import cohere
from api.translate.cohere import COHERE_FIELDS, chat_request_to_oci
from tests.translate.helpers import TIME_TOOL, USER, WEATHER_TOOL, chat, opts
from tests.translate.sdk_check import assert_sdk_valid

pytestmark = pytest.mark.smoke

COMMAND_R = opts("cohere.command-r-08-2024", api_format="COHERE", default_max_tokens=4096)
META = {"model": "public", "completion_id": "chatcmpl-c", "created": 1}


def translate(o=COMMAND_R, **body):
    out = chat_request_to_oci(chat(**body), o)
    assert_sdk_valid(out.chat_request)
    return out


def test_history_preamble_and_last_message():
    out = translate(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "How "}, {"type": "text", "text": "are you?"}],
            },
        ],
        stream=True,
        temperature=0.5,
        top_p=0.8,
        top_k=10,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        seed=3,
        stop="###",
        documents=[{"title": "t", "snippet": "s"}],
    )
    assert out.chat_request == {
        "apiFormat": "COHERE",
        "message": "How are you?",
        "chatHistory": [{"role": "USER", "message": "Hi"}, {"role": "CHATBOT", "message": "Hello!"}],
        "preambleOverride": "Be brief.\n\nAnswer in French.",
        "isStream": True,
        "streamOptions": {"isIncludeUsage": True},
        "temperature": 0.5,
        "topP": 0.8,
        "topK": 10,
        "frequencyPenalty": 0.1,
        "presencePenalty": 0.2,
        "seed": 3,
        "stopSequences": ["###"],
        "documents": [{"title": "t", "snippet": "s"}],
        "maxTokens": 4000,
    }
    assert out.dropped == [] and out.turn == 1


@pytest.mark.parametrize(
    ("o", "body", "expected"),
    [
        (COMMAND_R, {}, 4000),
        (opts("cohere.command-r-08-2024"), {"max_tokens": 5000}, 4000),
        (COMMAND_R, {"max_tokens": 8192}, 4000),
        (COMMAND_R, {"max_tokens": 100}, 100),
        (opts("cohere.command-r-08-2024", default_max_tokens=600), {}, 600),
        (opts("cohere.command-r-08-2024", max_output_tokens=16000), {"max_completion_tokens": 9000}, 9000),
    ],
)
def test_output_length_capped(o, body, expected):
    assert translate(o, **body).chat_request["maxTokens"] == expected


def test_tools_become_parameter_definitions():
    nested = {
        "type": "function",
        "function": {
            "name": "book",
            "parameters": {
                "type": "object",
                "properties": {
                    "guests": {"type": "integer", "description": "How many", "minimum": 1},
                    "price": {"type": "number"},
                    "vip": {"type": "boolean"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "address": {
                        "type": "object",
                        "description": "Where",
                        "properties": {"city": {"type": "string"}},
                    },
                    "anything": {},
                },
                "required": ["guests"],
            },
        },
    }
    tools = translate(tools=[WEATHER_TOOL, nested]).chat_request["tools"]
    assert tools[0] == {
        "name": "get_weather",
        "description": "Current weather",
        "parameterDefinitions": {
            "city": {"type": "str", "isRequired": True},
            "unit": {"type": "str", "isRequired": False, "description": "Allowed values: C, F"},
        },
    }
    defs = tools[1]["parameterDefinitions"]
    assert tools[1]["description"] == "book"  # CohereTool.description is required
    assert defs["guests"] == {"type": "int", "isRequired": True, "description": "How many. Minimum: 1"}
    assert defs["price"]["type"] == "float" and defs["vip"]["type"] == "bool"
    assert defs["tags"] == {"type": "list", "isRequired": False, "description": "Items: str"}
    assert defs["address"]["type"] == "dict"
    assert defs["address"]["description"].startswith("Where. A JSON object following this schema: ")
    assert '"city"' in defs["address"]["description"]
    assert defs["anything"] == {"type": "str", "isRequired": False}


def test_non_object_tool_schema_is_a_clear_400():
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "array", "items": {}}}}
    with pytest.raises(GatewayError) as e:
        translate(tools=[tool])
    assert e.value.param == "tools[0].function.parameters"


@pytest.mark.parametrize(
    ("choice", "names", "dropped"),
    [
        ("auto", ["get_weather", "get_time"], []),
        ("none", None, []),
        ("required", ["get_weather", "get_time"], ["tool_choice"]),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"], ["tool_choice"]),
    ],
)
def test_tool_choice(choice, names, dropped):
    out = translate(tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice)
    assert "toolChoice" not in out.chat_request
    assert [t["name"] for t in out.chat_request.get("tools", [])] == (names or [])
    assert out.dropped == dropped


def test_tool_choice_required_rejected_in_reject_mode():
    strict = opts("cohere.command-r-08-2024", unsupported_params="reject")
    with pytest.raises(GatewayError) as e:
        translate(strict, tools=[WEATHER_TOOL], tool_choice="required")
    assert e.value.param == "tool_choice"


def test_response_format():
    assert translate(response_format={"type": "json_object"}).chat_request["responseFormat"] == {
        "type": "JSON_OBJECT"
    }
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    assert translate(response_format=fmt).chat_request["responseFormat"] == {
        "type": "JSON_OBJECT",
        "schema": schema,
    }
    assert translate(response_format={"type": "text"}).chat_request["responseFormat"] == {"type": "TEXT"}


def test_unsupported_parameters_are_dropped():
    out = translate(
        n=2,
        logprobs=True,
        top_logprobs=2,
        logit_bias={"1": 1},
        reasoning_effort="low",
        verbosity="low",
        service_tier="priority",
        metadata={"a": "b"},
        parallel_tool_calls=False,
        tools=[WEATHER_TOOL],
        web_search_options={},
        prediction={"type": "content", "content": "x"},
        user="u",
    )
    assert set(out.dropped) == {
        "n",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "reasoning_effort",
        "verbosity",
        "service_tier",
        "metadata",
        "parallel_tool_calls",
        "web_search_options",
        "prediction",
        "user",
    }
    assert translate(n=1, parallel_tool_calls=True, tools=[WEATHER_TOOL], service_tier="auto").dropped == []


def test_images_are_rejected_naming_the_part():
    with pytest.raises(GatewayError) as e:
        translate(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "x"},
                        {"type": "image_url", "image_url": {"url": "data:,"}},
                    ],
                }
            ]
        )
    assert e.value.param == "messages[0].content[1]"


def test_conversation_must_end_with_user_or_tool():
    with pytest.raises(GatewayError) as e:
        translate(messages=[USER, {"role": "assistant", "content": "prefill"}])
    assert e.value.param == "messages[1]"
    with pytest.raises(GatewayError) as e:
        translate(messages=[{"role": "system", "content": "only"}])
    assert e.value.param == "messages"


def _assistant_from(response: dict) -> dict:
    """The assistant message a client appends after receiving `response`."""
    message = response["choices"][0]["message"]
    return {"role": "assistant", "content": message["content"], "tool_calls": message["tool_calls"]}


def test_tool_results_round_trip_through_synthesized_ids():
    # Turn 1: the model calls get_weather twice (same function, different arguments).
    first = chat(messages=[USER], tools=[WEATHER_TOOL])
    t1 = chat_request_to_oci(first, COMMAND_R)
    upstream = {
        "text": "",
        "finishReason": "COMPLETE",
        "toolCalls": [
            {"name": "get_weather", "parameters": {"city": "Paris"}},
            {"name": "get_weather", "parameters": {"city": "Rome"}},
        ],
    }
    response = cohere.chat_result_to_openai(upstream, **META, turn=t1.turn)
    assistant = _assistant_from(response)
    paris, rome = (c["id"] for c in assistant["tool_calls"])
    assert paris != rome

    # Turn 2: the client answers in the other order; results pair with their calls by id.
    messages = [
        USER,
        assistant,
        {"role": "tool", "tool_call_id": rome, "content": '{"temp": 25}'},
        {"role": "tool", "tool_call_id": paris, "content": "18C and sunny"},
    ]
    out = translate(messages=messages, tools=[WEATHER_TOOL])
    assert out.chat_request["message"] == ""
    assert out.chat_request["toolResults"] == [
        {"call": {"name": "get_weather", "parameters": {"city": "Rome"}}, "outputs": [{"temp": 25}]},
        {
            "call": {"name": "get_weather", "parameters": {"city": "Paris"}},
            "outputs": [{"output": "18C and sunny"}],
        },
    ]
    assert out.chat_request["chatHistory"] == [
        {"role": "USER", "message": "Hello"},
        {
            "role": "CHATBOT",
            "message": "",
            "toolCalls": [
                {"name": "get_weather", "parameters": {"city": "Paris"}},
                {"name": "get_weather", "parameters": {"city": "Rome"}},
            ],
        },
    ]
    assert out.turn == 1

    # Turn 3: the next round's calls get ids distinct from turn 1's, even for an identical call.
    again = cohere.chat_result_to_openai(upstream, **META, turn=t1.turn)
    assert again["choices"][0]["message"]["tool_calls"][0]["id"] == paris  # same turn, same id
    later = chat(
        messages=[*messages, {"role": "assistant", "content": "Done."}, {"role": "user", "content": "And?"}]
    )
    later_turn = chat_request_to_oci(later, COMMAND_R).turn
    later_ids = [
        c["id"]
        for c in cohere.chat_result_to_openai(upstream, **META, turn=later_turn)["choices"][0]["message"][
            "tool_calls"
        ]
    ]
    assert not {paris, rome} & set(later_ids)


def test_earlier_tool_rounds_go_to_history():
    out = translate(
        messages=[
            USER,
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "a1",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"tz":"UTC"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "a1", "content": "12:00"},
            {"role": "assistant", "content": "It is noon."},
            {"role": "user", "content": "Thanks"},
        ]
    )
    body = out.chat_request
    assert body["message"] == "Thanks" and "toolResults" not in body
    assert body["chatHistory"][1:] == [
        {"role": "CHATBOT", "message": "", "toolCalls": [{"name": "get_time", "parameters": {"tz": "UTC"}}]},
        {
            "role": "TOOL",
            "toolResults": [
                {"call": {"name": "get_time", "parameters": {"tz": "UTC"}}, "outputs": [{"output": "12:00"}]}
            ],
        },
        {"role": "CHATBOT", "message": "It is noon."},
    ]


def test_unknown_tool_call_id_and_bad_arguments():
    with pytest.raises(GatewayError) as e:
        translate(messages=[USER, {"role": "tool", "tool_call_id": "ghost", "content": "x"}])
    assert e.value.param == "messages[1].tool_call_id"
    bad = {
        "role": "assistant",
        "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{oops"}}],
    }
    with pytest.raises(GatewayError) as e:
        translate(messages=[USER, bad, {"role": "tool", "tool_call_id": "a", "content": "x"}])
    assert e.value.param == "messages[1].tool_calls[0].function.arguments"


def test_raw_registry_defaults():
    o = opts("cohere.command-r-08-2024", param_defaults={"safetyMode": "OFF", "temperature": 0.1})
    body = translate(o).chat_request
    assert body["safetyMode"] == "OFF" and body["temperature"] == 0.1


def test_cohere_fields_match_the_sdk():
    import oci.generative_ai_inference.models as m

    assert set(m.CohereChatRequest().attribute_map.values()) == COHERE_FIELDS


def test_cohere_call_id_is_stable():
    a = cohere.cohere_call_id(1, 0, "f", {"b": 1, "a": 2})
    assert a == cohere.cohere_call_id(1, 0, "f", orjson.loads('{"a": 2, "b": 1}'))
    assert a != cohere.cohere_call_id(1, 1, "f", {"b": 1, "a": 2})
