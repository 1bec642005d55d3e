"""OpenAI passthrough deployments (Data Science vLLM, OCI's `/openai/v1`): what is special about them.

The shared cases (plain, tools, tool results, parallel calls, tool_choice, vision, JSON schema, reasoning)
run for both passthrough kinds in test_chat_generic.py; this file covers the routes, the body the gateway
sends, and the parameters the gateway still owns (model name, output cap, stream usage, reasoning).
"""

from __future__ import annotations

import pytest

from api.translate.openai_passthrough import OpenAIStreamTranslator
from tests.api import chat_cases
from tests.api.chat_cases import (
    PLAIN,
    TOOLS,
    answer_to,
    ask,
    assert_billed,
)

# fixtures shared by the chat suites
chat_gateway = chat_cases.chat_gateway
upstream_bodies = chat_cases.upstream_bodies

MESSAGES = [{"role": "user", "content": PLAIN}]


@pytest.mark.parametrize(("model", "upstream_model"),
                         [pytest.param("ds/odsc-llm", "odsc-llm", marks=pytest.mark.smoke),
                          ("oci-openai/grok-4", "xai.grok-4")])
def test_routes_body_and_names(chat_gateway, upstream_bodies, model, upstream_model):
    emulator = chat_gateway.emulator
    if model.startswith("ds/"):
        paths = {False: f"/{emulator.deployment_id}/predict/v1/chat/completions",
                 True: f"/{emulator.deployment_id}/predictWithResponseStream/v1/chat/completions"}
    else:
        paths = {False: "/openai/v1/chat/completions", True: "/openai/v1/chat/completions"}
    for stream in (False, True):
        answer = ask(chat_gateway, "sync", "stream" if stream else "create", model=model, messages=MESSAGES)
        assert answer.content == answer_to(PLAIN) and answer.model == model  # the public name, not upstream's
        entry = assert_billed(emulator, answer, stream=stream)
        assert entry["path"] == paths[stream] and entry["signature"] == "ok" and entry["apiFormat"] == "OPENAI"
        (sent,) = upstream_bodies[answer.request_id]
        assert sent["body"]["model"] == upstream_model
        if stream:
            assert sent["body"]["stream"] is True and sent["body"]["stream_options"] == {"include_usage": True}
        else:
            assert "stream_options" not in sent["body"] and not sent["body"].get("stream")
        assert sent["body"]["max_tokens"] == 4096  # the registry default: OCI's own default is tiny


def test_vendor_extras_are_forwarded_not_dropped(chat_gateway, upstream_bodies):
    answer = ask(chat_gateway, "sync", "create", model="ds/odsc-llm", messages=MESSAGES, tools=TOOLS,
                 extra_body={"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}}, user="u-1", seed=7)
    assert answer.dropped == []
    body = upstream_bodies[answer.request_id][0]["body"]
    assert (body["top_k"], body["chat_template_kwargs"], body["user"], body["seed"]) == (
        20, {"enable_thinking": False}, "u-1", 7)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "get_time"]


def test_reasoning_effort_only_where_the_deployment_reasons(chat_gateway, upstream_bodies):
    kw = {"messages": [{"role": "user", "content": "Why is the sky blue?"}], "reasoning_effort": "low"}
    for how in ("create", "stream"):
        plain = ask(chat_gateway, "sync", how, model="oci-openai/grok-4", **kw)
        assert plain.dropped == ["reasoning_effort"] and plain.reasoning is None
        assert "reasoning_effort" not in upstream_bodies[plain.request_id][0]["body"]
        reasoning = ask(chat_gateway, "sync", how, model="oci-openai/gpt-5", **kw)
        assert reasoning.dropped == [] and reasoning.reasoning.startswith("The user wrote")
        assert upstream_bodies[reasoning.request_id][0]["body"]["reasoning_effort"] == "low"
        assert_billed(chat_gateway.emulator, reasoning, stream=how == "stream")


def test_output_length_above_the_cap_is_capped(chat_gateway, upstream_bodies):
    for param, how in (("max_tokens", "create"), ("max_completion_tokens", "stream")):
        kw = {"model": "ds/odsc-llm-capped", "messages": [{"role": "user", "content": "Talk [[emulator: words=30]]"}],
              param: 100_000}
        answer = ask(chat_gateway, "sync", how, **kw)
        assert answer.finish_reason == "length" and answer.usage["completion_tokens"] == 8
        assert upstream_bodies[answer.request_id][0]["body"][param] == 8
        assert_billed(chat_gateway.emulator, answer, stream=how == "stream")


def test_max_tokens_reaches_gpt5_as_max_completion_tokens(chat_gateway, upstream_bodies):
    """OCI's /openai/v1 answers 400 to `max_tokens` for gpt-5 and o-series; the native path maps it, so
    passthrough does too (clients such as ElevenLabs and older SDKs only know `max_tokens`)."""
    for how in ("create", "stream"):
        answer = ask(chat_gateway, "sync", how, model="oci-openai/gpt-5", messages=MESSAGES, max_tokens=300)
        assert answer.content == answer_to(PLAIN)
        body = upstream_bodies[answer.request_id][0]["body"]
        assert body["max_completion_tokens"] == 300 and "max_tokens" not in body
        assert_billed(chat_gateway.emulator, answer, stream=how == "stream")


def test_upstream_400_keeps_its_message(chat_gateway):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        chat_gateway.openai().chat.completions.create(
            model="ds/odsc-llm", messages=[{"role": "tool", "tool_call_id": "call_x", "content": "orphan"}])
    assert "tool_call_id" in caught.value.body["message"]
    entries = chat_gateway.emulator.ledger(0)
    assert entries[-1]["status"] == 400


def test_vllm_finish_chunk_carrying_the_last_tool_call_delta_is_split():
    """vLLM can put the last arguments delta and finish_reason in one chunk; the SDK's stream helper would then
    never report that call done, so the finish reason goes out in a chunk of its own."""
    translator = OpenAIStreamTranslator("public", "chatcmpl-1", 1)
    base = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "odsc-llm"}
    first = translator.feed({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        "finish_reason": None}]})
    last = translator.feed({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": "{}"}}]}, "finish_reason": "tool_calls"}]})
    assert len(first) == 1 and len(last) == 2
    assert last[0]["choices"][0]["finish_reason"] is None and last[0]["choices"][0]["delta"]["tool_calls"]
    assert last[1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}
    assert translator.finished and translator.finish_reason == "tool_calls"

