"""Chat through the real ``oci`` SDK in all three formats, streamed and not."""

from __future__ import annotations

import json

import oci
import pytest

M = oci.generative_ai_inference.models
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
           "required": ["city"]}


def details(emu, model, chat_request, endpoint_id=None):
    serving = (M.DedicatedServingMode(endpoint_id=endpoint_id) if endpoint_id
               else M.OnDemandServingMode(model_id=model))
    return M.ChatDetails(compartment_id=emu.compartment_id, serving_mode=serving, chat_request=chat_request)


def user(text):
    return M.UserMessage(content=[M.TextContent(text=text)])


def events(response):
    out = []
    for ev in response.data.events():
        out.append(ev.data if ev.data == "[DONE]" else json.loads(ev.data))
    return out


# ------------------------------------------------------------------------------------------ GENERIC

def test_generic_non_stream(emulator, client):
    r = client.chat(details(emulator, "meta.llama-3.3-70b-instruct",
                            M.GenericChatRequest(messages=[user("Tell me about Paris")], max_tokens=200)))
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert isinstance(r.data, M.ChatResult)
    resp = r.data.chat_response
    assert resp.api_format == "GENERIC"
    choice = resp.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content[0].text == "Emulated answer to: Tell me about Paris"
    assert resp.usage.prompt_tokens == 4
    assert resp.usage.completion_tokens == 8
    assert resp.usage.total_tokens == 12
    assert r.data.model_id == "meta.llama-3.3-70b-instruct"
    assert resp.time_created is not None
    entry = emulator.ledger()[-1]
    assert entry["usage"] == {"completionTokens": 8, "promptTokens": 4, "totalTokens": 12}
    assert entry["signature"] == "ok" and entry["schema"] == "ok" and entry["status"] == 200


def test_generic_stream_with_usage(emulator, client):
    req = M.GenericChatRequest(messages=[user("Say hello world")], is_stream=True,
                               stream_options=M.StreamOptions(is_include_usage=True))
    r = client.chat(details(emulator, "meta.llama-3.3-70b-instruct", req))
    assert r.headers["content-type"] == "text/event-stream"
    evs = events(r)
    assert evs[-1] == "[DONE]"
    usage, finish = evs[-2], evs[-3]
    assert set(usage) == {"usage", "pad"}
    assert finish["finishReason"] == "stop" and "index" not in finish
    text = "".join(e["message"]["content"][0]["text"] for e in evs[:-3])
    assert text == "Emulated answer to: Say hello world"
    assert all("pad" in e for e in evs[:-1])
    assert usage["usage"]["completionTokens"] == 7
    entry = emulator.ledger()[-1]
    assert entry["stream"] and entry["eventsWritten"] == len(evs)
    assert entry["usage"]["completionTokens"] == 7 and not entry["disconnected"]


def test_generic_stream_without_usage_event(emulator, client):
    req = M.GenericChatRequest(messages=[user("hi")], is_stream=True)
    evs = events(client.chat(details(emulator, "xai.grok-3", req)))
    assert evs[-1] == "[DONE]"
    assert "finishReason" in evs[-2]
    assert not any("usage" in e for e in evs[:-1])


def test_generic_reasoning_model(emulator, client):
    r = client.chat(details(emulator, "openai.gpt-oss-120b", M.GenericChatRequest(messages=[user("Why?")])))
    msg = r.data.chat_response.choices[0].message
    assert msg.reasoning_content and msg.reasoning_content.startswith("The user wrote")
    usage = r.data.chat_response.usage
    assert usage.completion_tokens_details.reasoning_tokens > 0
    req = M.GenericChatRequest(messages=[user("Why?")], is_stream=True)
    evs = events(client.chat(details(emulator, "xai.grok-3-mini", req)))
    first = evs[0]["message"]
    assert "reasoningContent" in first and "content" not in first


def test_generic_tool_call_and_result(emulator, client):
    tools = [M.FunctionDefinition(name="get_weather", description="Weather for a city", parameters=WEATHER),
             M.FunctionDefinition(name="get_time", description="Time", parameters={"type": "object"})]
    req = M.GenericChatRequest(messages=[user("Use get_weather for Paris please")], tools=tools)
    r = client.chat(details(emulator, "meta.llama-3.3-70b-instruct", req))
    choice = r.data.chat_response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.name == "get_weather" and call.type == "FUNCTION" and call.id.startswith("call_")
    assert json.loads(call.arguments) == {"city": "Paris"}
    # answer the call: the next turn is text that includes the tool output
    follow = M.GenericChatRequest(messages=[
        user("Use get_weather for Paris please"),
        M.AssistantMessage(tool_calls=[call]),
        M.ToolMessage(tool_call_id=call.id, content=[M.TextContent(text='{"temp": 21}')]),
    ], tools=tools)
    r2 = client.chat(details(emulator, "meta.llama-3.3-70b-instruct", follow))
    text = r2.data.chat_response.choices[0].message.content[0].text
    assert text == 'According to get_weather: {"temp": 21}'


def test_generic_tool_result_for_unknown_call_is_400(emulator, client):
    req = M.GenericChatRequest(messages=[
        user("hi"),
        M.AssistantMessage(tool_calls=[M.FunctionCall(id="call_a", name="f", arguments="{}")]),
        M.ToolMessage(tool_call_id="call_b", content=[M.TextContent(text="x")]),
    ])
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.chat(details(emulator, "meta.llama-3.3-70b-instruct", req))
    assert exc.value.status == 400
    assert "'toolCallId'" in exc.value.message and "not found in 'toolCalls' of previous message" in exc.value.message


def test_generic_parallel_tool_calls_streamed(emulator, client):
    tools = [M.FunctionDefinition(name="get_weather", parameters=WEATHER),
             M.FunctionDefinition(name="get_time", parameters={"type": "object", "properties": {}})]
    req = M.GenericChatRequest(messages=[user("Call get_weather for Rome and get_time")], tools=tools,
                               is_stream=True)
    evs = events(client.chat(details(emulator, "openai.gpt-oss-20b", req)))
    calls, current = [], None
    for e in evs:
        if isinstance(e, dict) and "toolCalls" in e.get("message", {}):
            tc = e["message"]["toolCalls"][0]
            if "id" in tc:
                current = {"id": tc["id"], "name": tc["name"], "arguments": ""}
                calls.append(current)
            else:
                current["arguments"] += tc["arguments"]
    assert [c["name"] for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Rome"}
    assert evs[-2]["finishReason"] == "tool_calls" and evs[-1] == "[DONE]"


def test_generic_twice_and_tool_directive(emulator, client):
    tools = [M.FunctionDefinition(name="lookup", parameters={"type": "object", "properties": {"q": {"type": "string"}},
                                                               "required": ["q"]})]
    r = client.chat(details(emulator, "xai.grok-4", M.GenericChatRequest(
        messages=[user("call lookup twice for Oslo and Bergen")], tools=tools)))
    args = [json.loads(c.arguments) for c in r.data.chat_response.choices[0].message.tool_calls]
    assert args == [{"q": "Oslo"}, {"q": "Bergen"}]
    r = client.chat(details(emulator, "xai.grok-4", M.GenericChatRequest(
        messages=[user("no names here [[emulator: tool]]")], tools=tools)))
    assert r.data.chat_response.choices[0].message.tool_calls[0].name == "lookup"
    r = client.chat(details(emulator, "xai.grok-4", M.GenericChatRequest(
        messages=[user("lookup things")], tools=tools, tool_choice=M.ToolChoiceNone())))
    assert r.data.chat_response.choices[0].message.tool_calls is None


def test_generic_max_tokens_json_schema_and_n(emulator, client):
    r = client.chat(details(emulator, "meta.llama-3.3-70b-instruct", M.GenericChatRequest(
        messages=[user("one two three four five six")], max_tokens=3, num_generations=2)))
    choices = r.data.chat_response.choices
    assert len(choices) == 2 and all(c.finish_reason == "length" for c in choices)
    assert choices[0].message.content[0].text == "Emulated answer to"
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    fmt = M.JsonSchemaResponseFormat(json_schema=M.ResponseJsonSchema(name="person", schema=schema, is_strict=True))
    r = client.chat(details(emulator, "meta.llama-3.3-70b-instruct",
                            M.GenericChatRequest(messages=[user("Alice is 30")], response_format=fmt)))
    assert set(json.loads(r.data.chat_response.choices[0].message.content[0].text)) == {"name", "age"}


def test_gpt5_rejects_max_tokens(emulator, client):
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.chat(details(emulator, "openai.gpt-5", M.GenericChatRequest(messages=[user("hi")], max_tokens=10)))
    assert exc.value.status == 400 and "maxCompletionTokens" in exc.value.message
    r = client.chat(details(emulator, "openai.gpt-5",
                            M.GenericChatRequest(messages=[user("hi")], max_completion_tokens=10)))
    assert r.status == 200


def test_image_to_text_only_model_is_400(emulator, client):
    img = M.ImageContent(image_url=M.ImageUrl(url="data:image/png;base64,AAAA"))
    msg = M.UserMessage(content=[M.TextContent(text="what is this"), img])
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.chat(details(emulator, "meta.llama-3.3-70b-instruct", M.GenericChatRequest(messages=[msg])))
    assert exc.value.status == 400
    r = client.chat(details(emulator, "meta.llama-3.2-90b-vision-instruct", M.GenericChatRequest(messages=[msg])))
    assert r.data.chat_response.usage.prompt_tokens == 3 + 85


def test_wrong_format_unknown_model_wrong_compartment(emulator, client):
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.chat(details(emulator, "cohere.command-r-08-2024", M.GenericChatRequest(messages=[user("hi")])))
    assert exc.value.status == 400 and "COHERE" in exc.value.message
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.chat(details(emulator, "meta.no-such-model", M.GenericChatRequest(messages=[user("hi")])))
    assert (exc.value.status, exc.value.code) == (404, "NotAuthorizedOrNotFound")
    assert exc.value.message == "Authorization failed or requested resource not found."
    d = details(emulator, "meta.llama-3.3-70b-instruct", M.GenericChatRequest(messages=[user("hi")]))
    d.compartment_id = "ocid1.compartment.oc1..other"
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.chat(d)
    assert (exc.value.status, exc.value.code) == (404, "NotAuthorizedOrNotFound")
    emulator.set_settings(not_found_code="404")
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.chat(d)
    assert exc.value.code == "404"


def test_model_by_ocid_and_dedicated_endpoint(emulator, client):
    cat = emulator.catalog()
    ocid = next(m["ocid"] for m in cat["models"] if m["name"] == "meta.llama-3.3-70b-instruct")
    r = client.chat(details(emulator, ocid, M.GenericChatRequest(messages=[user("hi")])))
    assert r.data.model_id == ocid
    ep = next(e["id"] for e in cat["endpoints"] if e["model"] == "cohere.command-a-03-2025")
    r = client.chat(details(emulator, None, M.CohereChatRequestV2(messages=[M.CohereUserMessageV2(
        content=[M.CohereTextContentV2(text="hi")])]), endpoint_id=ep))
    assert r.data.chat_response.api_format == "COHEREV2"
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.chat(details(emulator, None, M.GenericChatRequest(messages=[user("hi")]),
                            endpoint_id="ocid1.generativeaiendpoint.oc1.us-chicago-1.nope"))
    assert exc.value.status == 404


# ------------------------------------------------------------------------------------------ COHERE

def test_cohere_non_stream_and_stream(emulator, client):
    req = M.CohereChatRequest(message="Say hi.", chat_history=[M.CohereUserMessage(message="Earlier"),
                                                               M.CohereChatBotMessage(message="Sure")])
    r = client.chat(details(emulator, "cohere.command-r-08-2024", req))
    resp = r.data.chat_response
    assert resp.api_format == "COHERE" and resp.finish_reason == "COMPLETE"
    assert resp.text == "Emulated answer to: Say hi."
    assert [m.role for m in resp.chat_history] == ["USER", "CHATBOT", "USER", "CHATBOT"]
    req.is_stream = True
    req.stream_options = M.StreamOptions(is_include_usage=True)
    evs = events(client.chat(details(emulator, "cohere.command-r-08-2024", req)))
    assert "[DONE]" not in evs
    assert all(e["apiFormat"] == "COHERE" for e in evs)
    deltas, last = evs[:-1], evs[-1]
    assert "".join(e["text"] for e in deltas) == last["text"] == "Emulated answer to: Say hi."
    assert last["finishReason"] == "COMPLETE" and last["chatHistory"][-1]["role"] == "CHATBOT"
    assert last["usage"]["totalTokens"] == last["usage"]["promptTokens"] + last["usage"]["completionTokens"]


def test_cohere_tools(emulator, client):
    tool = M.CohereTool(name="get_weather", description="Weather", parameter_definitions={
        "city": M.CohereParameterDefinition(type="str", description="City", is_required=True)})
    req = M.CohereChatRequest(message="get_weather in Lisbon", tools=[tool])
    resp = client.chat(details(emulator, "cohere.command-r-plus-08-2024", req)).data.chat_response
    assert resp.tool_calls[0].name == "get_weather" and resp.tool_calls[0].parameters == {"city": "Lisbon"}
    follow = M.CohereChatRequest(message="", tools=[tool], chat_history=[
        M.CohereUserMessage(message="get_weather in Lisbon"),
        M.CohereChatBotMessage(message="", tool_calls=resp.tool_calls)],
        tool_results=[M.CohereToolResult(call=resp.tool_calls[0], outputs=[{"temp": 25}])])
    resp2 = client.chat(details(emulator, "cohere.command-r-plus-08-2024", follow)).data.chat_response
    assert "get_weather" in resp2.text and "25" in resp2.text


# ------------------------------------------------------------------------------------------ COHEREV2

def v2user(text):
    return M.CohereUserMessageV2(content=[M.CohereTextContentV2(text=text)])


def test_coherev2_non_stream_and_stream(emulator, client):
    r = client.chat(details(emulator, "cohere.command-a-03-2025", M.CohereChatRequestV2(messages=[v2user("Hi")])))
    resp = r.data.chat_response
    assert resp.api_format == "COHEREV2" and resp.finish_reason == "COMPLETE" and resp.id
    assert resp.message.content[0].text == "Emulated answer to: Hi"
    req = M.CohereChatRequestV2(messages=[v2user("Hi")], is_stream=True)
    evs = events(client.chat(details(emulator, "cohere.command-a-03-2025", req)))
    assert "[DONE]" not in evs and all(e["apiFormat"] == "COHEREV2" for e in evs)
    assert evs[-1]["finishReason"] == "COMPLETE" and evs[-1]["message"] == {"role": "ASSISTANT"}
    assert "usage" not in evs[-1]


def test_coherev2_reasoning_and_tools(emulator, client):
    r = client.chat(details(emulator, "cohere.command-a-reasoning", M.CohereChatRequestV2(messages=[v2user("Hi")])))
    content = r.data.chat_response.message.content
    assert [c.type for c in content] == ["THINKING", "TEXT"]
    tool = M.CohereToolV2(type="FUNCTION", function=M.Function(name="get_weather", description="w", parameters=WEATHER))
    r = client.chat(details(emulator, "cohere.command-a-03-2025",
                            M.CohereChatRequestV2(messages=[v2user("get_weather for Tokyo")], tools=[tool])))
    resp = r.data.chat_response
    assert resp.finish_reason == "TOOL_CALL"
    call = resp.message.tool_calls[0]
    assert call.function["name"] == "get_weather" and json.loads(call.function["arguments"]) == {"city": "Tokyo"}
    follow = M.CohereChatRequestV2(tools=[tool], messages=[
        v2user("get_weather for Tokyo"),
        M.CohereAssistantMessageV2(content=[M.CohereTextContentV2(text="")], tool_calls=[call]),
        M.CohereToolMessageV2(tool_call_id=call.id, content=[M.CohereTextContentV2(text="sunny")])])
    r = client.chat(details(emulator, "cohere.command-a-03-2025", follow))
    assert r.data.chat_response.message.content[0].text == "According to get_weather: sunny"
    follow.messages[2].tool_call_id = "wrong"
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.chat(details(emulator, "cohere.command-a-03-2025", follow))
    assert exc.value.status == 400 and "toolCallId" in exc.value.message
