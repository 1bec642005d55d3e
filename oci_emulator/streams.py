"""SSE event builders for each chat format, and the wire framing.

Each builder returns a list of ``(payload, tokens)`` pairs: ``payload`` is a dict (one JSON event)
or :data:`DONE`; ``tokens`` is the number of completion tokens the event carries, so the ledger can
bill exactly what was written when a stream is cut short. Framing is ``data: <json>\\n\\n`` with no
``event:``/``id:`` lines; ``pad`` (a run of ``a`` of varying length) is appended to every JSON event
when the ``pad`` setting is on.
"""

from __future__ import annotations

import orjson

from .generate import Generation, count_tokens, split_arguments, split_text

DONE = object()
DONE_FRAME = b"data: [DONE]\n\n"

GENERIC_FINISH = {
    "lower": {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool_calls": "tool_calls"},
    "upper": {"stop": "COMPLETE", "stop_sequence": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALLS"},
}
COHERE_FINISH = {"stop": "COMPLETE", "stop_sequence": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "COMPLETE"}
COHEREV2_FINISH = {"stop": "COMPLETE", "stop_sequence": "STOP_SEQUENCE", "length": "MAX_TOKENS",
                   "tool_calls": "TOOL_CALL"}


def frame(payload, pad_len: int | None) -> bytes:
    if payload is DONE:
        return DONE_FRAME
    if pad_len:
        payload = dict(payload)
        payload["pad"] = "a" * pad_len
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def pad_length(i: int) -> int:
    return (i * 7 + 3) % 17 + 1


def usage_body(prompt: int, completion: int, reasoning: int = 0) -> dict:
    usage = {"completionTokens": completion, "promptTokens": prompt, "totalTokens": prompt + completion}
    if reasoning:
        usage["completionTokensDetails"] = {"reasoningTokens": reasoning}
    return usage


def generation_usage(gens: list[Generation]) -> dict:
    return usage_body(gens[0].prompt_tokens, sum(g.completion_tokens for g in gens),
                      sum(g.reasoning_tokens for g in gens))


# ---------------------------------------------------------------------------------------------- GENERIC

def generic_events(gens: list[Generation], include_usage: bool, settings: dict) -> list[tuple]:
    finish_map = GENERIC_FINISH[settings["finish_reason_case"]]
    whole = settings["generic_tool_delta"] == "whole"
    multi = len(gens) > 1
    events: list[tuple] = []
    for idx, gen in enumerate(gens):
        def delta(message, tokens=0, _idx=idx):
            message = {"role": "ASSISTANT", **message}
            events.append(({"index": _idx, "message": message}, tokens))

        for piece in split_text(gen.reasoning):
            delta({"reasoningContent": piece}, count_tokens(piece))
        if not gen.tool_calls:
            delta({"content": [{"type": "TEXT", "text": ""}]})
            for piece in split_text(gen.text):
                delta({"content": [{"type": "TEXT", "text": piece}]}, count_tokens(piece))
        for call in gen.tool_calls:
            if whole:
                delta({"toolCalls": [{"id": call.id, "type": "FUNCTION", "name": call.name,
                                      "arguments": call.arguments}]},
                      count_tokens(call.name) + count_tokens(call.arguments))
                continue
            delta({"toolCalls": [{"type": "FUNCTION", "id": call.id, "name": call.name}]}, count_tokens(call.name))
            for frag in split_arguments(call.arguments):
                delta({"toolCalls": [{"type": "FUNCTION", "arguments": frag}]}, count_tokens(frag))
        fin = {"message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": ""}]},
               "finishReason": finish_map[gen.finish]}
        if multi:
            fin = {"index": idx, **fin}
        events.append((fin, 0))
    if include_usage:
        events.append(({"usage": generation_usage(gens)}, 0))
    if settings["generic_done"]:
        events.append((DONE, 0))
    return events


def generic_message(gen: Generation) -> dict:
    msg: dict = {"role": "ASSISTANT"}
    if gen.tool_calls:
        msg["toolCalls"] = [{"id": c.id, "type": "FUNCTION", "name": c.name, "arguments": c.arguments}
                            for c in gen.tool_calls]
    else:
        msg["content"] = [{"type": "TEXT", "text": gen.text}]
    if gen.reasoning:
        msg["reasoningContent"] = gen.reasoning
    return msg


# ---------------------------------------------------------------------------------------------- COHERE

def cohere_tool_calls(gen: Generation) -> list[dict]:
    return [{"name": c.name, "parameters": c.parameters} for c in gen.tool_calls]


def cohere_events(gen: Generation, terminal: dict, include_usage: bool) -> list[tuple]:
    events: list[tuple] = []
    for piece in split_text(gen.text):
        events.append(({"apiFormat": "COHERE", "text": piece}, count_tokens(piece)))
    if gen.tool_calls:
        events.append(({"apiFormat": "COHERE", "text": "", "toolCalls": cohere_tool_calls(gen)},
                       gen.completion_tokens))
    last = dict(terminal)
    if not include_usage:
        last.pop("usage", None)
    events.append((last, 0))
    return events


# ---------------------------------------------------------------------------------------------- COHEREV2

def coherev2_tool_calls(gen: Generation) -> list[dict]:
    return [{"id": c.id, "type": "FUNCTION", "function": {"name": c.name, "arguments": c.arguments}}
            for c in gen.tool_calls]


def coherev2_tool_plan(gen: Generation) -> str:
    return "I will call " + " and ".join(dict.fromkeys(c.name for c in gen.tool_calls)) + "."


def coherev2_message(gen: Generation) -> dict:
    msg: dict = {"role": "ASSISTANT"}
    content = []
    if gen.reasoning:
        content.append({"type": "THINKING", "thinking": gen.reasoning})
    if gen.tool_calls:
        msg["toolPlan"] = coherev2_tool_plan(gen)
        msg["toolCalls"] = coherev2_tool_calls(gen)
    else:
        content.append({"type": "TEXT", "text": gen.text})
    if content:
        msg["content"] = content
    return msg


def coherev2_events(gen: Generation, include_usage: bool, settings: dict) -> list[tuple]:
    events: list[tuple] = []

    def ev(message, tokens=0):
        events.append(({"apiFormat": "COHEREV2", "message": {"role": "ASSISTANT", **message}}, tokens))

    for piece in split_text(gen.reasoning):
        ev({"content": [{"type": "THINKING", "thinking": piece}]}, count_tokens(piece))
    for piece in split_text(gen.text):
        ev({"content": [{"type": "TEXT", "text": piece}]}, count_tokens(piece))
    mode = settings["coherev2_tool_delta"]
    finish_msg: dict = {"role": "ASSISTANT"}
    fin_tokens = 0
    if gen.tool_calls:
        ev({"toolPlan": coherev2_tool_plan(gen)})
        if mode == "finish":
            finish_msg["toolCalls"] = coherev2_tool_calls(gen)
            fin_tokens = gen.completion_tokens - gen.reasoning_tokens
        for call in gen.tool_calls if mode != "finish" else ():
            tokens = count_tokens(call.name) + count_tokens(call.arguments)
            if mode == "whole":
                ev({"toolCalls": [{"id": call.id, "type": "FUNCTION",
                                   "function": {"name": call.name, "arguments": call.arguments}}]}, tokens)
            else:
                ev({"toolCalls": [{"id": call.id, "type": "FUNCTION",
                                   "function": {"name": call.name, "arguments": ""}}]}, count_tokens(call.name))
                for frag in split_arguments(call.arguments):
                    ev({"toolCalls": [{"function": {"arguments": frag}}]}, count_tokens(frag))
    fin: dict = {"apiFormat": "COHEREV2", "message": finish_msg, "finishReason": COHEREV2_FINISH[gen.finish]}
    usage = usage_body(gen.prompt_tokens, gen.completion_tokens, gen.reasoning_tokens)
    if include_usage and settings["coherev2_usage"] == "finish":
        fin["usage"] = usage
    events.append((fin, fin_tokens))
    if include_usage and settings["coherev2_usage"] == "separate":
        events.append(({"apiFormat": "COHEREV2", "usage": usage}, 0))
    return events


# ---------------------------------------------------------------------------------------------- OpenAI

def openai_events(gens: list[Generation], base: dict, include_usage: bool) -> list[tuple]:
    """vLLM / OCI OpenAI-compatible chat.completion.chunk events, ending with [DONE]."""
    events: list[tuple] = []

    def chunk(idx, delta, finish=None, tokens=0):
        body = dict(base)
        body["choices"] = [{"index": idx, "delta": delta, "logprobs": None, "finish_reason": finish}]
        events.append((body, tokens))

    for idx, gen in enumerate(gens):
        chunk(idx, {"role": "assistant", "content": ""})
        for piece in split_text(gen.reasoning):
            chunk(idx, {"reasoning_content": piece}, tokens=count_tokens(piece))
        for piece in split_text(gen.text):
            chunk(idx, {"content": piece}, tokens=count_tokens(piece))
        for n, call in enumerate(gen.tool_calls):
            chunk(idx, {"tool_calls": [{"index": n, "id": call.id, "type": "function",
                                        "function": {"name": call.name, "arguments": ""}}]},
                  tokens=count_tokens(call.name))
            for frag in split_arguments(call.arguments):
                chunk(idx, {"tool_calls": [{"index": n, "function": {"arguments": frag}}]}, tokens=count_tokens(frag))
        chunk(idx, {}, finish=openai_finish(gen.finish))
    if include_usage:
        body = dict(base)
        body["choices"] = []
        body["usage"] = openai_usage(gens)
        events.append((body, 0))
    events.append((DONE, 0))
    return events


def openai_finish(finish: str) -> str:
    return {"stop_sequence": "stop"}.get(finish, finish)


def openai_usage(gens: list[Generation]) -> dict:
    prompt = gens[0].prompt_tokens
    completion = sum(g.completion_tokens for g in gens)
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    reasoning = sum(g.reasoning_tokens for g in gens)
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage
