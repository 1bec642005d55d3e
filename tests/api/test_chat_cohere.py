"""COHERE (Command R, v1) and COHEREV2 (Command A) chat, end to end through the official `openai` SDK.

The same three-way check as the GENERIC suite (non-streamed, streamed and reassembled, the SDK's stream
helper; sync and async), usage equal to the emulator's ledger, plus what is special to Cohere: no `[DONE]`,
a terminal event that repeats the whole text (it must not be relayed twice), tool calls without ids (v1:
the gateway's ids must pair results with calls, on any replica), and the COHEREV2 stream shapes the
reference leaves open (tool-call deltas, where usage rides).
"""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tests.api import chat_cases
from tests.api.chat_cases import (
    ASK_WEATHER,
    CASES,
    PLAIN,
    TOOLS,
    TWICE,
    Answer,
    Case,
    answer_to,
    ask,
    assert_billed,
    check_one_call,
    ledger_entry,
    run_case,
    usage_record,
    user_messages,
)

# fixtures shared by the chat suites
chat_gateway = chat_cases.chat_gateway
upstream_bodies = chat_cases.upstream_bodies

COHERE = "cohere.command-r-08-2024"
COHEREV2 = "cohere.command-a-03-2025"


def _check_reasoning_tools(answer: Answer) -> None:
    check_one_call(answer)
    # COHEREV2 reasoning models think first, then state a tool plan; both are the turn's reasoning.
    assert answer.reasoning.startswith("The user wrote") and "I will call get_weather." in answer.reasoning


REASONING_TOOLS = Case("reasoning_tools", lambda g, m: {"messages": user_messages(ASK_WEATHER), "tools": TOOLS},
                       _check_reasoning_tools, needs="reasoning")
ALL_CASES = {**CASES, REASONING_TOOLS.name: REASONING_TOOLS}

TARGETS = {
    "cohere": {"default": COHERE},
    "coherev2": {"default": COHEREV2, "vision": "cohere.command-a-vision", "reasoning": "cohere.command-a-reasoning"},
}
COHERE_CASES = ["plain", "tools", "tool_result", "parallel", "json_schema", "documents", "choice_none", "vision",
                "reasoning", "reasoning_tools", "length", "stop"]
SMOKE = {("cohere", "tools"), ("coherev2", "tool_result"), ("cohere", "plain")}


def _params():
    out, n = [], 0
    for target, models in TARGETS.items():
        for name in COHERE_CASES:
            case = ALL_CASES[name]
            if case.needs not in models:
                continue
            mode = "async" if n % 2 else "sync"
            n += 1
            marks = [pytest.mark.smoke] if (target, name) in SMOKE else []
            out.append(pytest.param(name, models[case.needs], mode, marks=marks, id=f"{target}-{name}-{mode}"))
    return out


@pytest.mark.parametrize(("case", "model", "mode"), _params())
def test_chat_case(chat_gateway, case, model, mode):
    whole, streamed, _helped = run_case(chat_gateway, ALL_CASES[case], model, mode)
    if whole.content:
        # Cohere's terminal event repeats the whole text: relayed once, never twice.
        assert streamed.content == whole.content and whole.content.count(whole.content[:24]) == 1


def test_cohere_tool_results_pair_with_their_calls(chat_gateway, upstream_bodies):
    """v1 has no call ids: each result goes back with its own call's name and parameters."""
    from tests.api.chat_cases import tool_result_messages

    messages = tool_result_messages(chat_gateway, COHERE, TWICE)
    calls = {c["id"]: orjson.loads(c["function"]["arguments"]) for c in messages[2]["tool_calls"]}
    assert sorted(c["city"] for c in calls.values()) == ["London", "Paris"]
    answer = ask(chat_gateway, "sync", "create", model=COHERE, messages=[*messages[:3], *reversed(messages[3:])],
                 tools=TOOLS)
    body = upstream_bodies[answer.request_id][0]["body"]["chatRequest"]
    assert body["message"] == ""
    results = body["toolResults"]
    assert [r["call"]["parameters"]["city"] for r in results] == ["London", "Paris"]  # the client's order
    for result in results:
        assert result["call"]["name"] == "get_weather"
        assert result["outputs"] == [{"city": result["call"]["parameters"]["city"], "temp_c": 21}]
    assert answer.content.startswith("According to get_weather:")


# --- emulator shape settings: the client sees the same thing ---------------------------------------


SETTINGS = [
    ({"coherev2_tool_delta": "fragments"}, "tools"),
    ({"coherev2_tool_delta": "fragments"}, "parallel"),
    ({"coherev2_tool_delta": "finish"}, "tools"),
    ({"coherev2_tool_delta": "finish"}, "parallel"),
    ({"coherev2_usage": "separate"}, "plain"),
    ({"coherev2_usage": "separate"}, "tools"),
    ({"pad": False, "split_writes": True}, "parallel"),
]


@pytest.mark.parametrize(("changes", "case"), SETTINGS,
                         ids=["+".join(f"{k}={v}" for k, v in c.items()) + f"-{n}" for c, n in SETTINGS])
def test_coherev2_shape_settings_give_the_same_client_visible_result(chat_gateway, changes, case):
    emulator = chat_gateway.emulator
    kw = {"model": COHEREV2, **CASES[case].build(chat_gateway, COHEREV2)}
    baseline = [ask(chat_gateway, "sync", how, **kw) for how in ("create", "stream")]
    emulator.set_settings(**changes)
    for how, before in zip(("create", "stream", "helper"), [*baseline, baseline[0]], strict=True):
        after = ask(chat_gateway, "async" if how == "helper" else "sync", how, **kw)
        CASES[case].check(after)
        assert after.visible() == before.visible() and after.usage == before.usage
        assert_billed(emulator, after, stream=how != "create")


@pytest.mark.parametrize("case", ["plain", "tools"])
def test_coherev2_stream_without_usage_is_estimated_not_zero(chat_gateway, case):
    """`coherev2_usage=none`: upstream reports no usage. The answer is the same; the usage the client asked
    for (and the usage record) is the gateway's estimate, a lower bound of what OCI billed, never zero."""
    emulator = chat_gateway.emulator
    kw = {"model": COHEREV2, **CASES[case].build(chat_gateway, COHEREV2)}
    before = ask(chat_gateway, "sync", "stream", **kw)
    emulator.set_settings(coherev2_usage="none")
    after = ask(chat_gateway, "sync", "stream", **kw)
    CASES[case].check(after)
    assert after.visible() == before.visible()
    billed = ledger_entry(emulator, after.request_id)["usage"]
    assert after.usage is not None, "the client asked for usage"
    assert 0 < after.usage["completion_tokens"] <= billed["completionTokens"]
    assert 0 < after.usage["prompt_tokens"] <= billed["promptTokens"]
    record = usage_record(after.request_id)
    assert record.usage_source == "estimated" and record.total_tokens == after.usage["total_tokens"]


@pytest.mark.smoke
def test_cohere_stream_left_open_ends_with_the_finish_event(chat_gateway):
    """No [DONE] upstream, connection kept open: the SDK still gets the whole answer promptly, once."""
    for model in (COHERE, COHEREV2):
        start = time.monotonic()
        kw = {"model": model, "messages": [{"role": "user", "content": "Say hi [[emulator: keep_open]]"}]}
        streamed = ask(chat_gateway, "sync", "stream", **kw)
        helped = ask(chat_gateway, "async", "helper", **kw)
        assert time.monotonic() - start < 5
        for answer in (streamed, helped):
            assert answer.content == answer_to("Say hi") and answer.finish_reason == "stop"


@pytest.mark.parametrize(("model", "case"), [("command-r-non-stream", "tools"), ("command-r-non-stream", "plain"),
                                             ("command-a-no-stream-tools", "parallel")])
def test_non_streaming_upstream_serves_a_streamed_cohere_request(chat_gateway, model, case):
    kw = {"model": model, **CASES[case].build(chat_gateway, model)}
    whole = ask(chat_gateway, "sync", "create", **kw)
    for mode, how in (("sync", "stream"), ("async", "helper")):
        answer = ask(chat_gateway, mode, how, **kw)
        CASES[case].check(answer)
        assert answer.visible() == whole.visible() and answer.usage == whole.usage
        assert_billed(chat_gateway.emulator, answer, stream=False)


# --- a tool loop across two gateway processes --------------------------------------------------------


class _Other:
    """The second gateway process, with the same key (the helpers only need api_base and key)."""

    def __init__(self, proc, key: str, emulator) -> None:
        self.api_base = proc.base_url + "/v1"
        self.key = key
        self.emulator = emulator
        self.proc = proc


def _wait_until_serving(other: _Other, model: str, timeout: float = 20.0) -> None:
    """The other process learns of the new key and catalogue through the invalidation bus."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(other.api_base + "/models", headers={"Authorization": f"Bearer {other.key}"},
                                 timeout=5)
        except httpx.HTTPError as exc:  # a busy machine: try again until the deadline
            status = repr(exc)
        else:
            status = response.status_code
            if status == 200 and model in {m["id"] for m in response.json()["data"]}:
                return
        time.sleep(0.1)
    raise AssertionError(f"the second gateway never served {model} (last answer: {status}); "
                         f"its output: {_output(other.proc)!r}")


def _output(proc) -> str:
    """What the second gateway printed so far (non-blocking)."""
    import fcntl
    import os

    stream = proc.proc.stdout
    fcntl.fcntl(stream.fileno(), fcntl.F_SETFL, os.O_NONBLOCK)
    try:
        return (stream.read() or b"").decode(errors="replace")[-3000:]
    except OSError:
        return ""


def _assistant(answer: Answer) -> dict:
    return {"role": "assistant", "content": answer.content, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in answer.tool_calls]}


def _results(answer: Answer) -> list[dict]:
    return [{"role": "tool", "tool_call_id": i,
             "content": orjson.dumps({"city": orjson.loads(a)["city"], "temp_c": 21, "tool": n}).decode()}
            for i, n, a in answer.tool_calls]


@pytest.mark.parametrize("model", [pytest.param(COHERE, marks=pytest.mark.smoke), COHEREV2,
                                   "meta.llama-3.3-70b-instruct"])
def test_tool_loop_across_two_gateway_processes(chat_gateway, gateway_process, upstream_bodies, model):
    """Calls made on one replica are answered through another: ids replay, every result pairs with its call."""
    here = chat_gateway
    there = _Other(gateway_process, chat_gateway.key, chat_gateway.emulator)
    _wait_until_serving(there, model)

    # Round 1 here, streamed through the SDK helper: two parallel calls to the same function.
    messages = [{"role": "user", "content": TWICE}]
    first = ask(here, "sync", "helper", model=model, messages=messages, tools=TOOLS)
    assert [orjson.loads(a)["city"] for _i, _n, a in first.tool_calls] == ["Paris", "London"]
    # Every replica gives the same calls the same ids (Cohere v1: the gateway's own ids).
    again = ask(there, "sync", "create", model=model, messages=messages, tools=TOOLS)
    assert again.tool_calls == first.tool_calls

    # Round 2 there, results in reverse order.
    messages += [_assistant(first), *reversed(_results(first))]
    second = ask(there, "async", "stream", model=model, messages=messages, tools=TOOLS)
    assert second.tool_calls == [] and second.finish_reason == "stop"
    assert second.content.startswith("According to get_weather:") and '"city":"Paris"' in second.content
    assert_billed(here.emulator, second, stream=True)
    # The same round here, to see what went upstream: each result paired with its own call.
    check = ask(here, "sync", "create", model=model, messages=messages, tools=TOOLS)
    assert check.visible() == second.visible()
    _assert_paired(upstream_bodies[check.request_id][0]["body"]["chatRequest"])

    # Round 3 there (a new question after the loop), round 4 here: the history keeps the first round.
    messages += [{"role": "assistant", "content": second.content},
                 {"role": "user", "content": "Now call get_time for Rome"}]
    third = ask(there, "sync", "helper", model=model, messages=messages, tools=TOOLS)
    assert [(n, orjson.loads(a)) for _i, n, a in third.tool_calls] == [("get_time", {"city": "Rome"})]
    assert third.tool_calls[0][0] not in {i for i, _n, _a in first.tool_calls}
    messages += [_assistant(third), *_results(third)]
    fourth = ask(here, "async", "create", model=model, messages=messages, tools=TOOLS)
    assert fourth.content.startswith("According to get_time:") and fourth.finish_reason == "stop"
    assert_billed(here.emulator, fourth, stream=False)
    _assert_paired(upstream_bodies[fourth.request_id][0]["body"]["chatRequest"])


def _assert_paired(body: dict) -> None:
    """Every tool result in an upstream body answers the call it names (by id, or by name + parameters)."""
    if body["apiFormat"] == "COHERE":
        rounds = [h["toolResults"] for h in body.get("chatHistory") or [] if h["role"] == "TOOL"]
        rounds.append(body.get("toolResults") or [])
        pairs = [(r["call"]["name"], r["call"]["parameters"]["city"], r["outputs"][0]) for rs in rounds for r in rs]
        assert pairs and all(out["tool"] == name and out["city"] == city for name, city, out in pairs), pairs
        return
    calls = {}
    pairs = []
    for message in body["messages"]:
        for call in message.get("toolCalls") or []:
            fn = call.get("function") or call
            calls[call["id"]] = (fn["name"], orjson.loads(fn["arguments"])["city"])
        if message["role"] == "TOOL":
            out = orjson.loads(message["content"][0]["text"])
            pairs.append((calls[message["toolCallId"]], out))
    assert pairs and all(out["tool"] == name and out["city"] == city for (name, city), out in pairs), pairs


def test_unknown_tool_call_id_is_a_400(chat_gateway):
    import openai

    messages = [{"role": "user", "content": ASK_WEATHER},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_known", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
                {"role": "tool", "tool_call_id": "call_unknown", "content": "sunny"}]
    for model in (COHERE, COHEREV2):
        with pytest.raises(openai.BadRequestError) as caught:
            chat_gateway.openai().chat.completions.create(model=model, messages=messages, tools=TOOLS)
        assert "call_unknown" in caught.value.body["message"]


def test_plain_cohere_usage_record_equals_ledger(chat_gateway):
    for model in (COHERE, COHEREV2):
        for how in ("create", "stream"):
            answer = ask(chat_gateway, "sync", how, model=model, messages=[{"role": "user", "content": PLAIN}])
            billed = assert_billed(chat_gateway.emulator, answer, stream=how == "stream")["usage"]
            record = usage_record(answer.request_id)
            assert (record.prompt_tokens, record.completion_tokens, record.usage_source) == (
                billed["promptTokens"], billed["completionTokens"], "upstream")
