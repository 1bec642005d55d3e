"""GENERIC and OpenAI passthrough chat, end to end through the official `openai` SDK.

Every case runs three ways against the emulator: a non-streamed `create`, a streamed `create` (chunks
reassembled) and the SDK's stream helper (`client.chat.completions.stream(...).get_final_completion()`),
sync or async. All three must give the same client-visible answer, and each one's usage must equal what
the emulator billed for the request with the same `opc-request-id`.
"""

from __future__ import annotations

import pytest

from tests.api import chat_cases
from tests.api.chat_cases import (
    ASK_WEATHER,
    CASES,
    PLAIN,
    TOOLS,
    answer_to,
    ask,
    assert_billed,
    run_case,
    usage_record,
)

# fixtures shared by the chat suites
chat_gateway = chat_cases.chat_gateway
upstream_bodies = chat_cases.upstream_bodies

# Target → model per capability. GENERIC: Meta for text and tools, Grok 4 for images, GPT-5 for reasoning
# (maxCompletionTokens + reasoningEffort). Passthrough: OCI's /openai/v1 and a Data Science vLLM deployment
# (which emits no reasoning, so it has no reasoning case).
TARGETS = {
    "generic": {"default": "meta.llama-3.3-70b-instruct", "vision": "xai.grok-4", "reasoning": "openai.gpt-5"},
    "generic-xai": {"default": "xai.grok-4", "reasoning": "xai.grok-3-mini"},
    "oci-openai": {"default": "oci-openai/grok-4", "vision": "oci-openai/grok-4", "reasoning": "oci-openai/gpt-5"},
    "datascience": {"default": "ds/odsc-llm", "vision": "ds/odsc-llm"},
    "provider": {"default": "vllm/gpt-4o", "vision": "vllm/gpt-4o"},
    "azure": {"default": "azure/gpt-4o"},
}
GENERIC_CASES = ["plain", "tools", "tool_result", "parallel", "choice_none", "choice_required", "choice_named",
                 "vision", "json_schema", "reasoning", "length", "stop"]
SMOKE = {("generic", "tools"), ("oci-openai", "plain"), ("datascience", "tool_result"), ("generic", "reasoning"),
         ("provider", "tools"), ("azure", "plain")}


def _params():
    out = []
    n = 0
    for target, models in TARGETS.items():
        for name in GENERIC_CASES:
            case = CASES[name]
            if case.needs not in models or (target == "generic-xai" and case.needs == "default"
                                            and name not in ("plain", "parallel")):
                continue
            mode = "async" if n % 2 else "sync"  # half the cases stream through AsyncOpenAI
            n += 1
            marks = [pytest.mark.smoke] if (target, name) in SMOKE else []
            out.append(pytest.param(target, name, models[case.needs], mode, marks=marks, id=f"{target}-{name}-{mode}"))
    return out


@pytest.mark.parametrize(("target", "case", "model", "mode"), _params())
def test_chat_case(chat_gateway, target, case, model, mode):
    whole, _streamed, _helped = run_case(chat_gateway, CASES[case], model, mode)
    if case in ("plain", "tools") and target in ("generic", "oci-openai", "provider", "azure"):
        record = usage_record(whole.request_id)
        assert record.total_tokens == whole.usage["total_tokens"] and record.usage_source == "upstream"


# --- emulator shape settings: the client sees the same thing ---------------------------------------


SETTINGS = [
    ({"finish_reason_case": "upper"}, "plain"),
    ({"finish_reason_case": "upper"}, "tools"),
    ({"finish_reason_case": "upper"}, "choice_named"),
    ({"finish_reason_case": "upper"}, "length"),
    ({"generic_tool_delta": "whole"}, "tools"),
    ({"generic_tool_delta": "whole"}, "parallel"),
    ({"generic_done": False}, "plain"),
    ({"pad": False, "split_writes": True}, "parallel"),
]


@pytest.mark.parametrize(("changes", "case"), SETTINGS,
                         ids=["+".join(f"{k}={v}" for k, v in c.items()) + f"-{n}" for c, n in SETTINGS])
def test_shape_settings_give_the_same_client_visible_result(chat_gateway, changes, case):
    emulator = chat_gateway.emulator
    model = "meta.llama-3.3-70b-instruct"
    kw = {"model": model, **CASES[case].build(chat_gateway, model)}
    baseline = [ask(chat_gateway, "sync", how, **kw) for how in ("create", "stream")]
    emulator.set_settings(**changes)
    for how, before in zip(("create", "stream"), baseline, strict=True):
        after = ask(chat_gateway, "sync", how, **kw)
        CASES[case].check(after)
        assert after.visible() == before.visible() and after.usage == before.usage
        assert_billed(emulator, after, stream=how == "stream")


# --- tool choice, dropped parameters, caps, vision, non-streaming upstreams --------------------------


@pytest.mark.smoke
def test_tool_choice_none_stays_none(chat_gateway):
    """The prompt names the tool (the emulator would call it), `tool_choice: none` keeps it a text answer."""
    for model in ("meta.llama-3.3-70b-instruct", "xai.grok-4", "oci-openai/grok-4", "ds/odsc-llm",
                  "cohere.command-r-08-2024", "cohere.command-a-03-2025"):
        for how in ("create", "stream"):
            answer = ask(chat_gateway, "sync", how, model=model, messages=[{"role": "user", "content": ASK_WEATHER}],
                         tools=TOOLS, tool_choice="none")
            assert answer.tool_calls == [] and answer.finish_reason == "stop", (model, how)
            assert answer.content == answer_to(ASK_WEATHER)


def test_dropped_params_are_listed(chat_gateway, upstream_bodies):
    kw = {"messages": [{"role": "user", "content": PLAIN}], "user": "u-1", "store": True,
          "prompt_cache_key": "k", "audio": {"voice": "alloy", "format": "mp3"}, "extra_body": {"foo": 1}}
    for model, expected in [
        ("meta.llama-3.3-70b-instruct", {"user", "store", "prompt_cache_key", "audio", "foo"}),
        ("xai.grok-4", {"user", "store", "prompt_cache_key", "audio", "foo", "reasoning_effort"}),
        ("cohere.command-r-08-2024", {"user", "store", "prompt_cache_key", "audio", "foo", "logit_bias"}),
    ]:
        extra = {"reasoning_effort": "low"} if model == "xai.grok-4" else {}
        if model.startswith("cohere"):
            extra = {"logit_bias": {"50256": -100}}
        for how in ("create", "stream"):
            answer = ask(chat_gateway, "sync", how, model=model, **kw, **extra)
            assert set(answer.dropped) == expected, (model, how, answer.dropped)
            assert answer.content == answer_to(PLAIN)
            body = upstream_bodies[answer.request_id][0]["body"]["chatRequest"]
            assert "reasoningEffort" not in body and "user" not in body and "foo" not in body
    # Passthrough forwards what OpenAI servers take: nothing is dropped.
    answer = ask(chat_gateway, "sync", "create", model="ds/odsc-llm", **kw)
    assert answer.dropped == []
    assert upstream_bodies[answer.request_id][0]["body"]["user"] == "u-1"


def test_max_tokens_above_the_cap_is_capped_not_rejected(chat_gateway, upstream_bodies):
    kw = {"model": "llama-capped", "messages": [{"role": "user", "content": "Talk [[emulator: words=30]]"}],
          "max_tokens": 100_000}
    for how in ("create", "stream"):
        answer = ask(chat_gateway, "sync", how, **kw)
        assert answer.finish_reason == "length" and answer.usage["completion_tokens"] == 8
        assert upstream_bodies[answer.request_id][0]["body"]["chatRequest"]["maxTokens"] == 8
        assert_billed(chat_gateway.emulator, answer, stream=how == "stream")
    # Cohere on demand: capped at 4000 (registry cap from the import), never a 400.
    answer = ask(chat_gateway, "sync", "create", model="cohere.command-r-08-2024",
                 messages=[{"role": "user", "content": PLAIN}], max_completion_tokens=8192)
    assert upstream_bodies[answer.request_id][0]["body"]["chatRequest"]["maxTokens"] == 4000
    # GPT-5 needs maxCompletionTokens on the native API (maxTokens is a 400 there).
    answer = ask(chat_gateway, "sync", "create", model="openai.gpt-5", messages=[{"role": "user", "content": PLAIN}],
                 max_tokens=300)
    body = upstream_bodies[answer.request_id][0]["body"]["chatRequest"]
    assert body["maxCompletionTokens"] == 300 and "maxTokens" not in body


def test_image_to_a_text_model_is_a_400_naming_the_part(chat_gateway):
    import openai

    client = chat_gateway.openai()
    since = chat_gateway.emulator.last_seq()
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}]
    for model in ("meta.llama-3.3-70b-instruct", "oci-openai/llama-text", "cohere.command-r-08-2024",
                  "cohere.command-a-03-2025"):
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as caught:
                client.chat.completions.create(model=model, messages=messages, stream=stream)
            error = caught.value.body
            assert error["param"] == "messages[1].content[1]" and "messages[1].content[1]" in error["message"]
    assert chat_gateway.emulator.ledger(since) == [], "rejected before any upstream call"


@pytest.mark.parametrize(("model", "case"), [
    pytest.param("llama-non-stream", "plain", marks=pytest.mark.smoke),
    ("llama-non-stream", "parallel"),
    ("llama-no-stream-tools", "tools"),
    ("ds/odsc-llm-non-stream", "tools"),
])
def test_non_streaming_upstream_serves_a_streamed_request(chat_gateway, model, case):
    """force_non_stream / supports_streaming_tools=False: one non-streamed upstream call, re-emitted as chunks."""
    kw = {"model": model, **CASES[case].build(chat_gateway, model)}
    whole = ask(chat_gateway, "sync", "create", **kw)
    streamed = ask(chat_gateway, "sync", "stream", **kw)
    helped = ask(chat_gateway, "async", "helper", **kw)
    CASES[case].check(streamed)
    for answer in (streamed, helped):
        assert answer.visible() == whole.visible() and answer.usage == whole.usage
        assert_billed(chat_gateway.emulator, answer, stream=False)  # upstream was called without streaming
    assert streamed.chunks >= 3  # role+content, finish, usage


def test_streaming_tools_off_still_streams_without_tools(chat_gateway):
    answer = ask(chat_gateway, "sync", "stream", model="llama-no-stream-tools",
                 messages=[{"role": "user", "content": PLAIN}])
    assert answer.content == answer_to(PLAIN)
    assert_billed(chat_gateway.emulator, answer, stream=True)


def test_usage_chunk_only_when_asked(chat_gateway):
    for model in ("meta.llama-3.3-70b-instruct", "ds/odsc-llm", "cohere.command-a-03-2025", "llama-non-stream"):
        answer = ask(chat_gateway, "sync", "stream", model=model, messages=[{"role": "user", "content": PLAIN}],
                     stream_options=None)
        assert answer.usage is None and answer.content == answer_to(PLAIN)
        record = usage_record(answer.request_id)
        billed = assert_billed_record(chat_gateway.emulator, answer.request_id)
        assert record.total_tokens == billed["totalTokens"] and record.usage_source == "upstream"


def assert_billed_record(emulator, request_id):
    from tests.api.chat_cases import ledger_entry

    return ledger_entry(emulator, request_id)["usage"]
