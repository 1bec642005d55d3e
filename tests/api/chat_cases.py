"""Shared pieces of the end-to-end chat suites: the official `openai` SDK → live gateway → OCI emulator.

- `chat_gateway`: the `gateway` fixture plus the deployments a native `models.yaml` import cannot express
  (OCI `/openai/v1` and Data Science passthrough, a capped deployment, non-streaming upstreams ...).
- `upstream_bodies`: every body the in-process gateway sent upstream (the ledger does not keep bodies).
- `Answer`: what a client sees of one completion (content, reasoning, tool calls, finish reason, usage),
  built the same way from a `chat.completion`, from reassembled chunks and from the SDK's stream helper,
  so "streamed equals non-streamed" is one `==`.
- drivers for the ways a client asks (sync/async × `create`/`create(stream=True)`/`.stream()` helper); each
  returns the gateway's request id (`x-request-id`), which is the `opc-request-id` of the emulator's ledger
  entry, so the billed usage can be joined.
- `CASES`: the request shapes of the parametrised suites, each with its expected client-visible result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

# --- catalogue -----------------------------------------------------------------------------------

# Public name → Deployment fields (created with the ORM: the models.yaml import infers formats from the
# model id and has no passthrough-on-demand or capped entries). `deployment_url` "DS" is filled in with
# the emulator's Data Science deployment.
PROVIDER_KEY_ENV = "TEST_PROVIDER_API_KEY"
TEST_ENCRYPTION_KEY = "test-encryption-passphrase-for-provider-keys"

EXTRA_DEPLOYMENTS: dict[str, dict] = {
    # OCI's own OpenAI-compatible endpoint (/openai/v1): an on-demand deployment in the OPENAI format.
    "oci-openai/grok-4": {"model_id": "xai.grok-4", "api_format": "OPENAI", "supports_vision": True},
    "oci-openai/gpt-5": {"model_id": "openai.gpt-5", "api_format": "OPENAI", "supports_vision": True,
                         "supports_reasoning": True},
    "oci-openai/llama-text": {"model_id": "meta.llama-3.3-70b-instruct", "api_format": "OPENAI"},
    # A Data Science model deployment running vLLM ("odsc-llm").
    "ds/odsc-llm": {"kind": "datascience", "model_id": "odsc-llm", "api_format": "OPENAI", "deployment_url": "DS",
                    "supports_vision": True},
    # Registry flags under test.
    "llama-capped": {"model_id": "meta.llama-3.3-70b-instruct", "default_max_tokens": 8, "max_output_tokens": 8},
    "llama-non-stream": {"model_id": "meta.llama-3.3-70b-instruct", "force_non_stream": True},
    "llama-no-stream-tools": {"model_id": "meta.llama-3.3-70b-instruct", "supports_streaming_tools": False},
    "command-r-non-stream": {"model_id": "cohere.command-r-08-2024", "api_format": "COHERE",
                             "force_non_stream": True, "max_output_tokens": 4000},
    "command-a-no-stream-tools": {"model_id": "cohere.command-a-03-2025", "api_format": "COHEREV2",
                                  "supports_streaming_tools": False},
    "ds/odsc-llm-capped": {"kind": "datascience", "model_id": "odsc-llm", "api_format": "OPENAI",
                           "deployment_url": "DS",
                           "default_max_tokens": 8, "max_output_tokens": 8},
    "ds/odsc-llm-non-stream": {"kind": "datascience", "model_id": "odsc-llm", "api_format": "OPENAI",
                               "deployment_url": "DS", "force_non_stream": True},
    # OpenAI-compatible providers outside OCI (the emulator's /provider/v1 and Azure forms): a bearer key
    # named by an environment variable, and an Azure api-key stored encrypted.
    "vllm/gpt-4o": {"kind": "openai_compatible", "model_id": "gpt-4o", "api_format": "OPENAI",
                    "base_url": "PROVIDER", "api_key_env": PROVIDER_KEY_ENV, "supports_vision": True},
    "azure/gpt-4o": {"kind": "openai_compatible", "model_id": "gpt-4o", "api_format": "OPENAI", "base_url": "AZURE",
                     "azure_api_version": "2024-10-21", "api_key_encrypted": "ENCRYPTED"},
}


def _slug(name: str) -> str:
    return "x-" + "".join(c if c.isalnum() else "-" for c in name.lower())


@pytest.fixture
def chat_gateway(gateway, settings, monkeypatch):
    """`gateway` with EXTRA_DEPLOYMENTS added (one catalog bump for all of them)."""
    from models_registry import bus, provider_keys
    from models_registry.models import Deployment, PublicModel, Route

    emulator = gateway.emulator
    provider_key = emulator.credentials.api_keys[0]
    monkeypatch.setenv(PROVIDER_KEY_ENV, provider_key)
    settings.GATEWAY_ENCRYPTION_KEY = TEST_ENCRYPTION_KEY
    deployments, models = [], []
    for name, fields in EXTRA_DEPLOYMENTS.items():
        fields = dict(fields)
        if fields.get("deployment_url") == "DS":
            fields["deployment_url"] = f"{emulator.base_url}/{emulator.deployment_id}/predict"
        if fields.get("base_url") in ("PROVIDER", "AZURE"):
            fields["base_url"] = emulator.base_url + ("/provider/v1" if fields["base_url"] == "PROVIDER" else "")
        if fields.get("api_key_encrypted") == "ENCRYPTED":
            fields["api_key_encrypted"] = provider_keys.encrypt(provider_key)
        fields.setdefault("kind", "ondemand")
        deployments.append(Deployment(name=_slug(name), region="us-chicago-1", compartment_id=emulator.compartment_id,
                                      source="chat-suite", **fields))
        models.append(PublicModel(name=name, source="chat-suite"))
    deployments = Deployment.objects.bulk_create(deployments)
    models = PublicModel.objects.bulk_create(models)
    Route.objects.bulk_create(Route(public_model=pm, deployment=d) for pm, d in zip(models, deployments, strict=True))
    bus.bump("catalog")
    yield gateway
    quiesce_usage_writers()


def quiesce_usage_writers(timeout: float = 10.0) -> None:
    """Wait until every usage record of the test's calls is committed, before the test's tables are flushed.

    Records are written in the background (in-memory queue, or the Redis stream's consumers in this process
    and in the second gateway process). On PostgreSQL a writer still inserting a record and its rollup while
    the teardown TRUNCATEs the tables deadlocks the flush (seen: `deadlock detected`, then every later test's
    setup failing on leftover rows). Consumers acknowledge only after commit: "no pending, no lag" = written.
    """
    from django.conf import settings

    from usage import recorder as recorder_module

    recorder_module.recorder.flush()
    if not settings.REDIS_URL:
        return
    import redis

    naming = getattr(recorder_module, "stream_name", None)
    stream = naming() if naming else recorder_module.STREAM
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                groups = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"]: g
                          for g in client.xinfo_groups(stream)}
            except redis.ResponseError:  # no stream yet
                return
            group = groups.get(recorder_module.GROUP)
            if group is None or (not group.get("pending") and not group.get("lag")):
                return
            time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture
def upstream_bodies(monkeypatch):
    """{request id: [{"url", "body", "stream"}]} of every upstream call the in-process gateway makes."""
    import api.chat

    sent: dict[str, list[dict]] = {}
    real = api.chat.post_signed

    async def spy(deployment, url, body, **kw):
        sent.setdefault(kw.get("request_id"), []).append(
            {"url": url, "body": orjson.loads(body), "stream": kw.get("stream")}
        )
        return await real(deployment, url, body, **kw)

    monkeypatch.setattr(api.chat, "post_signed", spy)
    return sent


# --- tools, schemas, prompts ---------------------------------------------------------------------


def _tool(name: str, description: str) -> dict:
    # strict: the SDK's stream helper only accepts strict function tools (it parses their arguments).
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }


WEATHER = _tool("get_weather", "Current weather in a city")
TIME = _tool("get_time", "Local time in a city")
TOOLS = [WEATHER, TIME]


class CityReport(BaseModel):
    city: str
    population: int


def city_report_format() -> dict:
    from openai.lib._parsing._completions import type_to_response_format_param

    return dict(type_to_response_format_param(CityReport))


IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PLAIN = "Say hello to the gateway"
ASK_WEATHER = "What is the weather in Paris? Call get_weather."
TWICE = "Compare get_weather in Paris and London in parallel"
DOCUMENTS = [{"title": "Paris", "snippet": "Paris is the capital of France and has two million inhabitants."}]


def answer_to(prompt: str) -> str:
    return f"Emulated answer to: {prompt}"


# --- what a client sees ----------------------------------------------------------------------------


@dataclass
class Answer:
    content: str | None
    reasoning: str | None
    tool_calls: list[tuple[str, str, str]]  # (id, name, arguments)
    finish_reason: str | None
    usage: dict | None  # prompt/completion/total (+ reasoning) tokens
    request_id: str
    headers: Any = None
    chunks: int = 0
    parsed: Any = None
    model: str = ""

    def visible(self) -> tuple:
        """Everything a client acts on except usage (compared separately)."""
        return self.content, self.reasoning, self.tool_calls, self.finish_reason

    @property
    def dropped(self) -> list[str]:
        value = (self.headers or {}).get("x-gateway-dropped-params") or ""
        return [p for p in value.split(",") if p]


def _usage(usage) -> dict | None:
    if usage is None:
        return None
    out = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
           "total_tokens": usage.total_tokens}
    details = usage.completion_tokens_details
    if details is not None and details.reasoning_tokens:
        out["reasoning_tokens"] = details.reasoning_tokens
    return out


def from_completion(completion, headers) -> Answer:
    assert completion.object == "chat.completion" and len(completion.choices) == 1
    choice = completion.choices[0]
    message = choice.message
    assert message.role == "assistant"
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]
    for call_id, name, _ in calls:
        assert call_id and name
    return Answer(
        content=message.content or None,
        reasoning=(message.model_extra or {}).get("reasoning_content") or None,
        tool_calls=calls,
        finish_reason=choice.finish_reason,
        usage=_usage(completion.usage),
        request_id=headers.get("x-request-id"),
        headers=headers,
        parsed=getattr(message, "parsed", None),
        model=completion.model,
    )


def from_chunks(chunks: list, headers) -> Answer:
    """Reassemble chunks the way OpenAI clients do, checking the chunk invariants on the way."""
    assert chunks, "no chunks"
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({(c.model, c.created) for c in chunks}) == 1
    content, reasoning = [], []
    calls: dict[int, list] = {}
    finish = None
    usage = None
    role_seen = False
    for n, chunk in enumerate(chunks):
        if chunk.usage is not None:
            assert chunk.choices == [] and n == len(chunks) - 1, "usage comes alone, on the last chunk"
            usage = _usage(chunk.usage)
        for choice in chunk.choices:
            assert choice.index == 0
            assert finish is None, "nothing after the finish reason but usage"
            delta = choice.delta
            if delta.role is not None:
                assert not role_seen and delta.role == "assistant"
                role_seen = True
            else:
                assert role_seen, "the first chunk carries the role"
            if delta.content:
                content.append(delta.content)
            extra = (delta.model_extra or {}).get("reasoning_content")
            if extra:
                reasoning.append(extra)
            for tc in delta.tool_calls or []:
                if tc.index not in calls:
                    assert tc.id and tc.type == "function" and tc.function.name, "a call opens with id and name"
                    calls[tc.index] = [tc.id, tc.function.name, tc.function.arguments or ""]
                else:
                    assert tc.id in (None, calls[tc.index][0]) and not tc.function.name
                    calls[tc.index][2] += tc.function.arguments or ""
            if choice.finish_reason is not None:
                finish = choice.finish_reason
    assert sorted(calls) == list(range(len(calls))), "tool-call indexes are 0..n-1"
    return Answer(
        content="".join(content) or None,
        reasoning="".join(reasoning) or None,
        tool_calls=[tuple(calls[i]) for i in sorted(calls)],
        finish_reason=finish,
        usage=usage,
        request_id=headers.get("x-request-id"),
        headers=headers,
        chunks=len(chunks),
        model=chunks[0].model,
    )


# --- drivers ---------------------------------------------------------------------------------------


def create(client, *, stream: bool = False, **kw) -> Answer:
    if stream:
        kw.setdefault("stream_options", {"include_usage": True})
        raw = client.chat.completions.with_raw_response.create(stream=True, **kw)
        return from_chunks(list(raw.parse()), raw.headers)
    raw = client.chat.completions.with_raw_response.create(**kw)
    return from_completion(raw.parse(), raw.headers)


async def acreate(client, *, stream: bool = False, **kw) -> Answer:
    if stream:
        kw.setdefault("stream_options", {"include_usage": True})
        raw = await client.chat.completions.with_raw_response.create(stream=True, **kw)
        # with_raw_response gives the legacy response object: parse() is synchronous, even here.
        return from_chunks([c async for c in raw.parse()], raw.headers)
    raw = await client.chat.completions.with_raw_response.create(**kw)
    return from_completion(raw.parse(), raw.headers)


def _check_helper_events(events: list, final) -> None:
    """The helper's own events agree with its final completion."""
    done = [e for e in events if e.type == "content.done"]
    message = final.choices[0].message
    if message.content:
        assert len(done) == 1 and done[0].content == message.content
    args_done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
    assert [(e.name, e.arguments) for e in args_done] == [
        (c.function.name, c.function.arguments) for c in message.tool_calls or []
    ]


def helper(client, **kw) -> Answer:
    """`client.chat.completions.stream(...)` and `.get_final_completion()` (the SDK's accumulation)."""
    kw.setdefault("stream_options", {"include_usage": True})
    with client.chat.completions.stream(**kw) as stream:
        events = list(stream)
        final = stream.get_final_completion()
        headers = stream._response.headers
    _check_helper_events(events, final)
    return from_completion(final, headers)


async def ahelper(client, **kw) -> Answer:
    kw.setdefault("stream_options", {"include_usage": True})
    async with client.chat.completions.stream(**kw) as stream:
        events = [e async for e in stream]
        final = await stream.get_final_completion()
        headers = stream._response.headers
    _check_helper_events(events, final)
    return from_completion(final, headers)


# Clients are cheap to make around a shared HTTP client; making their HTTP clients (an SSL context each) is
# not (~50 ms). Async calls run on one background event loop, so the async HTTP client can be shared too.
_shared: dict[str, Any] = {}


def sync_client(gateway):
    import openai

    if "sync" not in _shared:
        _shared["sync"] = openai.DefaultHttpxClient()
    return openai.OpenAI(base_url=gateway.api_base, api_key=gateway.key, max_retries=0, http_client=_shared["sync"])


def _loop() -> asyncio.AbstractEventLoop:
    if "loop" not in _shared:
        import threading

        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="chat-suite-async-clients", daemon=True).start()
        _shared["loop"] = loop
    return _shared["loop"]


def run_async(coro, timeout: float = 120.0):
    """Run a coroutine on the suite's background loop (async SDK clients live there)."""
    return asyncio.run_coroutine_threadsafe(coro, _loop()).result(timeout)


def async_client(gateway):
    """An AsyncOpenAI client; call only from a coroutine running on the suite's loop."""
    import openai

    if "async" not in _shared:
        _shared["async"] = openai.DefaultAsyncHttpxClient()
    return openai.AsyncOpenAI(base_url=gateway.api_base, api_key=gateway.key, max_retries=0,
                              http_client=_shared["async"])


def ask(gateway, mode: str, how: str, **kw) -> Answer:
    """One request: mode "sync"/"async"; how "create", "stream" or "helper"."""
    if mode == "sync":
        client = sync_client(gateway)
        if how == "helper":
            return helper(client, **kw)
        return create(client, stream=how == "stream", **kw)

    async def go():
        client = async_client(gateway)
        if how == "helper":
            return await ahelper(client, **kw)
        return await acreate(client, stream=how == "stream", **kw)

    return run_async(go())


# --- ledger ----------------------------------------------------------------------------------------


def ledger_entry(emulator, request_id: str) -> dict:
    entries = [e for e in emulator.ledger(0) if e["opcRequestId"] == request_id]
    assert len(entries) == 1, f"{len(entries)} ledger entries for {request_id}"
    return entries[0]


def assert_billed(emulator, answer: Answer, *, stream: bool) -> dict:
    """The answer's usage equals what the emulator billed for the request with the same opc-request-id."""
    entry = ledger_entry(emulator, answer.request_id)
    assert entry["status"] == 200 and entry["stream"] is stream, entry
    billed = entry["usage"]
    assert answer.usage is not None, "no usage reached the client"
    usage = answer.usage
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        billed["promptTokens"], billed["completionTokens"], billed["totalTokens"]
    ), (usage, billed)
    return entry


def usage_record(request_id: str, timeout: float = 10.0):
    """The gateway's usage record of one request (the live server writes it asynchronously)."""
    from usage.models import UsageRecord
    from usage.recorder import recorder

    deadline = time.monotonic() + timeout
    while True:
        recorder.flush()
        row = UsageRecord.objects.filter(request_id=request_id).first()
        if row is not None or time.monotonic() > deadline:
            assert row is not None, f"no usage record for {request_id}"
            return row
        time.sleep(0.05)


# --- cases -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A request shape and the client-visible result the emulator's deterministic model must give.

    `build(gateway, model)` returns the create() keyword arguments (it may run an earlier round first);
    `check(answer)` asserts on the non-streamed answer (streamed answers must equal it); `needs` picks a
    model with a capability ("vision", "reasoning"); `helper_kw` overrides arguments for the SDK's stream
    helper only (a pydantic `response_format`, which `create()` does not take).
    """

    name: str
    build: Callable[..., dict]
    check: Callable[[Answer], None]
    needs: str = "default"
    helper_kw: dict = field(default_factory=dict)
    helper_raises: bool = False  # the SDK's stream helper raises LengthFinishReasonError on a cut answer


def user_messages(text: str, system: bool = True) -> list[dict]:
    messages = [{"role": "system", "content": "You are a terse assistant."}] if system else []
    return [*messages, {"role": "user", "content": text}]


def _args(answer: Answer) -> list[tuple[str, dict]]:
    return [(name, orjson.loads(arguments)) for _id, name, arguments in answer.tool_calls]


def _check_plain(answer: Answer) -> None:
    assert answer.content == answer_to(PLAIN)
    assert answer.tool_calls == [] and answer.finish_reason == "stop"


def check_one_call(answer: Answer) -> None:
    assert answer.content is None and answer.finish_reason == "tool_calls"
    assert _args(answer) == [("get_weather", {"city": "Paris"})]
    assert answer.tool_calls[0][0].startswith("call_")


def _check_two_calls(answer: Answer) -> None:
    assert answer.finish_reason == "tool_calls"
    assert _args(answer) == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "London"})]
    assert len({call_id for call_id, _, _ in answer.tool_calls}) == 2, "parallel calls have distinct ids"


def _check_no_call(answer: Answer) -> None:
    assert answer.tool_calls == [] and answer.finish_reason == "stop"
    assert answer.content == answer_to(ASK_WEATHER)


def _check_required(answer: Answer) -> None:
    assert answer.finish_reason == "tool_calls"
    assert [name for name, _ in _args(answer)] == ["get_weather"]


def _check_named(answer: Answer) -> None:
    assert answer.finish_reason == "tool_calls"
    assert _args(answer) == [("get_time", {"city": "Paris"})]


def _check_vision(answer: Answer) -> None:
    assert answer.content == answer_to("Describe this picture") and answer.finish_reason == "stop"
    assert answer.usage["prompt_tokens"] > 85, "the image is billed (85 tokens per image in the emulator)"


def _check_json(answer: Answer) -> None:
    data = orjson.loads(answer.content)
    assert set(data) == {"city", "population"} and isinstance(data["population"], int)
    CityReport.model_validate(data)
    assert answer.finish_reason == "stop"
    if answer.parsed is not None:  # the SDK helper parsed it into the pydantic model
        assert isinstance(answer.parsed, CityReport)


def _check_reasoning(answer: Answer) -> None:
    assert answer.content == answer_to("Why is the sky blue?") and answer.finish_reason == "stop"
    assert answer.reasoning and answer.reasoning.startswith("The user wrote")
    assert answer.usage.get("reasoning_tokens", 0) > 0


def _check_tool_result(answer: Answer) -> None:
    assert answer.tool_calls == [] and answer.finish_reason == "stop"
    assert answer.content.startswith("According to get_weather:") and "21" in answer.content


def _check_length(answer: Answer) -> None:
    assert answer.finish_reason == "length" and answer.usage["completion_tokens"] == 5
    assert len(answer.content.split()) == 5 and answer.tool_calls == []


def _check_stop(answer: Answer) -> None:
    assert answer.content == "Emulated answer to: Say hello to the " and answer.finish_reason == "stop"


def _check_documents(answer: Answer) -> None:
    _check_plain(answer)
    assert "documents" not in answer.dropped


def tool_result_messages(gateway, model: str, prompt: str = ASK_WEATHER, **kw) -> list[dict]:
    """Round 1 (the model calls tools) and the messages of round 2 (the results, one per call)."""
    first = create(sync_client(gateway), model=model, messages=user_messages(prompt), tools=TOOLS, **kw)
    assert first.tool_calls, first
    assistant = {"role": "assistant", "content": None, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in first.tool_calls
    ]}
    results = [{"role": "tool", "tool_call_id": i, "content": orjson.dumps({"city": orjson.loads(a)["city"],
                                                                          "temp_c": 21}).decode()}
               for i, _n, a in first.tool_calls]
    return [*user_messages(prompt), assistant, *results]


CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case("plain", lambda g, m: {"messages": user_messages(PLAIN)}, _check_plain),
        Case("tools", lambda g, m: {"messages": user_messages(ASK_WEATHER), "tools": TOOLS}, check_one_call),
        Case("tool_result", lambda g, m: {"messages": tool_result_messages(g, m), "tools": TOOLS},
             _check_tool_result),
        Case("parallel",
             lambda g, m: {"messages": user_messages(TWICE), "tools": TOOLS, "parallel_tool_calls": True},
             _check_two_calls),
        Case("choice_none",
             lambda g, m: {"messages": user_messages(ASK_WEATHER), "tools": TOOLS, "tool_choice": "none"},
             _check_no_call),
        Case("choice_required",
             lambda g, m: {"messages": user_messages("Tell me something nice"), "tools": TOOLS,
                           "tool_choice": "required"},
             _check_required),
        Case("choice_named",
             lambda g, m: {"messages": user_messages("What is the weather in Paris?"), "tools": TOOLS,
                           "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
             _check_named),
        Case("vision",
             lambda g, m: {"messages": [{"role": "user", "content": [
                 {"type": "text", "text": "Describe this picture"},
                 {"type": "image_url", "image_url": {"url": IMAGE, "detail": "low"}}]}]},
             _check_vision, needs="vision"),
        Case("json_schema",
             lambda g, m: {"messages": user_messages("Report on Paris as JSON"),
                           "response_format": city_report_format()},
             _check_json, helper_kw={"response_format": CityReport}),
        Case("reasoning",
             lambda g, m: {"messages": user_messages("Why is the sky blue?"), "reasoning_effort": "low"},
             _check_reasoning, needs="reasoning"),
        Case("length",
             lambda g, m: {"messages": user_messages("Talk [[emulator: words=30]]"), "max_tokens": 5},
             _check_length, helper_raises=True),
        Case("stop", lambda g, m: {"messages": user_messages(PLAIN), "stop": ["gateway"]}, _check_stop),
        Case("documents",
             lambda g, m: {"messages": user_messages(PLAIN), "extra_body": {"documents": DOCUMENTS}},
             _check_documents),
    ]
}


def run_case(gateway, case: Case, model: str, mode: str) -> tuple[Answer, Answer, Answer]:
    """The case three ways (non-streamed, streamed, the SDK's stream helper), each checked against the ledger.

    Returns (whole, streamed, helper) after asserting that the streamed answers equal the non-streamed one.
    """
    kw = {"model": model, **case.build(gateway, model)}
    whole = ask(gateway, mode, "create", **kw)
    case.check(whole)
    assert_billed(gateway.emulator, whole, stream=False)

    streamed = ask(gateway, mode, "stream", **kw)
    assert streamed.visible() == whole.visible(), "streamed chunks reassemble to the non-streamed answer"
    assert streamed.usage == whole.usage
    assert streamed.dropped == whole.dropped
    assert_billed(gateway.emulator, streamed, stream=True)

    if case.helper_raises:
        import openai

        with pytest.raises(openai.LengthFinishReasonError) as caught:
            ask(gateway, mode, "helper", **{**kw, **case.helper_kw})
        message = caught.value.completion.choices[0].message
        assert (message.content, caught.value.completion.usage.total_tokens) == (
            whole.content, whole.usage["total_tokens"])
        return whole, streamed, None
    helped = ask(gateway, mode, "helper", **{**kw, **case.helper_kw})
    case.check(helped)
    assert helped.visible() == whole.visible()
    assert helped.usage == whole.usage
    assert_billed(gateway.emulator, helped, stream=True)
    return whole, streamed, helped
