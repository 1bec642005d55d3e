"""Chat request interpretation (GENERIC / COHERE / COHEREV2), service-side rules, response bodies.

Only called after :mod:`schema` accepted the body, so shapes and types are already right here.
"""

from __future__ import annotations

import hashlib
import time

import orjson

from .catalog import ModelInfo
from .errors import bad_request
from .generate import Generation, GenRequest, ToolSpec, Turn, generate, parse_directives
from .streams import (
    COHERE_FINISH,
    COHEREV2_FINISH,
    GENERIC_FINISH,
    cohere_tool_calls,
    coherev2_message,
    generation_usage,
    generic_message,
    usage_body,
)

MAX_TOOLS = 128
_PY_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
             "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "dict": "object",
             "object": "object"}


def time_created() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _media_check(settings, model: ModelInfo, kind: str, path: str) -> None:
    if kind == "IMAGE" and not model.vision:
        raise bad_request(settings, f"Invalid parameter: {path}: model {model.name} does not support image input.")
    if kind in ("AUDIO", "VIDEO", "DOCUMENT") and model.vendor != "google":
        raise bad_request(settings, f"Invalid parameter: {path}: model {model.name} does not support {kind} input.")


def _check_tool_results(settings, turns: list[Turn], label: str) -> None:
    """Every tool message must answer a call id of the closest preceding assistant turn."""
    prev_ids: set | None = None
    for i, t in enumerate(turns):
        if t.role == "assistant":
            prev_ids = {cid for cid, _n, _a in t.tool_calls}
        elif t.role == "tool":
            if prev_ids is None or t.tool_call_id not in prev_ids:
                raise bad_request(
                    settings,
                    f"Invalid parameter: 'toolCallId' {t.tool_call_id!r} of {label}[{i}] not found in "
                    "'toolCalls' of previous message.",
                )
        else:
            prev_ids = None


def _directives_of(turns: list[Turn]) -> dict:
    for t in reversed(turns):
        if t.role == "user":
            return parse_directives(t.text)
    return {}


# ------------------------------------------------------------------------------------------- GENERIC

def parse_generic(cr: dict, model: ModelInfo, settings: dict) -> tuple[GenRequest, bool]:
    for key, message in model.rejected_params.items():
        if cr.get(key) is not None:
            raise bad_request(settings, message)
    turns: list[Turn] = []
    for i, m in enumerate(cr["messages"]):
        role = m["role"].lower()
        texts, media = [], 0
        for j, part in enumerate(m.get("content") or ()):
            if part["type"] == "TEXT":
                texts.append(part["text"])
            else:
                _media_check(settings, model, part["type"], f"messages[{i}].content[{j}]")
                media += 1
        calls = [(c["id"], c["name"], c["arguments"]) for c in m.get("toolCalls") or ()]
        if role == "developer":
            role = "system"
        turns.append(Turn(role=role, text="".join(texts), tool_calls=calls, tool_call_id=m.get("toolCallId"),
                          media=media))
    _check_tool_results(settings, turns, "messages")
    tools = [ToolSpec(t["name"], t.get("description") or "", t.get("parameters")) for t in cr.get("tools") or ()]
    if len(tools) > MAX_TOOLS:
        raise bad_request(settings, f"Invalid parameter: tools: at most {MAX_TOOLS} tools are allowed.")
    choice = cr.get("toolChoice")
    tool_choice: str | tuple = "auto"
    if choice:
        if not tools:
            raise bad_request(settings, "Invalid parameter: toolChoice is only allowed when tools are specified.")
        if choice["type"] == "FUNCTION":
            if choice["name"] not in {t.name for t in tools}:
                raise bad_request(settings, f"Invalid parameter: toolChoice.name {choice['name']!r} is not in tools.")
            tool_choice = ("function", choice["name"])
        else:
            tool_choice = choice["type"].lower()
    n = cr.get("numGenerations") or 1
    if not 1 <= n <= 8:
        raise bad_request(settings, "Invalid parameter: numGenerations must be between 1 and 8.")
    max_tokens = cr.get("maxCompletionTokens") or cr.get("maxTokens")
    if max_tokens is not None and max_tokens < 1:
        raise bad_request(settings, "Invalid parameter: maxTokens must be at least 1.")
    fmt = cr.get("responseFormat")
    json_mode = None
    if fmt and fmt["type"] == "JSON_OBJECT":
        json_mode = True
    elif fmt and fmt["type"] == "JSON_SCHEMA":
        json_mode = fmt["jsonSchema"].get("schema") or True
    req = GenRequest(
        model_name=model.name, turns=turns, tools=tools, tool_choice=tool_choice,
        parallel_tools=cr.get("isParallelToolCalls") is not False, max_tokens=max_tokens,
        stop=list(cr.get("stop") or ()), n=n, json_mode=json_mode,
        reasoning=model.reasoning and cr.get("reasoningEffort") != "NONE", directives=_directives_of(turns),
    )
    include_usage = bool((cr.get("streamOptions") or {}).get("isIncludeUsage"))
    return req, include_usage


def generic_response(gens: list[Generation], model_id: str, model: ModelInfo, settings: dict) -> dict:
    finish = GENERIC_FINISH[settings["finish_reason_case"]]
    choices = [{"index": i, "message": generic_message(g), "finishReason": finish[g.finish]}
               for i, g in enumerate(gens)]
    return {"modelId": model_id, "modelVersion": model.version,
            "chatResponse": {"apiFormat": "GENERIC", "timeCreated": time_created(), "choices": choices,
                             "usage": generation_usage(gens)}}


# ------------------------------------------------------------------------------------------- COHERE

def _cohere_tools(tools: list[dict]) -> list[ToolSpec]:
    out = []
    for t in tools:
        props, required = {}, []
        for pname, pdef in (t.get("parameterDefinitions") or {}).items():
            props[pname] = {"type": _PY_TYPES.get(str(pdef.get("type")).lower(), "string"),
                            "description": pdef.get("description") or ""}
            if pdef.get("isRequired"):
                required.append(pname)
        out.append(ToolSpec(t["name"], t.get("description") or "",
                            {"type": "object", "properties": props, "required": required}))
    return out


def parse_cohere(cr: dict, model: ModelInfo, settings: dict) -> tuple[GenRequest, bool]:
    turns: list[Turn] = []
    if cr.get("preambleOverride"):
        turns.append(Turn("system", cr["preambleOverride"]))
    for h in cr.get("chatHistory") or ():
        role = h["role"]
        if role == "USER":
            turns.append(Turn("user", h["message"]))
        elif role == "SYSTEM":
            turns.append(Turn("system", h["message"]))
        elif role == "CHATBOT":
            calls = [(None, c["name"], orjson.dumps(c["parameters"]).decode()) for c in h.get("toolCalls") or ()]
            turns.append(Turn("assistant", h.get("message") or "", tool_calls=calls))
        else:
            for r in h["toolResults"]:
                turns.append(Turn("tool", orjson.dumps(r["outputs"]).decode(), tool_name=r["call"]["name"]))
    results = cr.get("toolResults") or ()
    if not cr["message"] and not results:
        raise bad_request(settings, "Invalid parameter: message must not be empty.")
    if cr["message"]:
        turns.append(Turn("user", cr["message"]))
    for r in results:
        turns.append(Turn("tool", orjson.dumps(r["outputs"]).decode(), tool_name=r["call"]["name"]))
    fmt = cr.get("responseFormat")
    json_mode = None
    if fmt and fmt["type"] == "JSON_OBJECT":
        json_mode = fmt.get("schema") or True
    extra = [orjson.dumps(cr["documents"]).decode()] if cr.get("documents") else []
    req = GenRequest(
        model_name=model.name, turns=turns, tools=_cohere_tools(cr.get("tools") or ()),
        parallel_tools=not cr.get("isForceSingleStep"), max_tokens=cr.get("maxTokens"),
        stop=list(cr.get("stopSequences") or ()), json_mode=json_mode, reasoning=False, extra_prompt=extra,
        directives=_directives_of(turns),
    )
    include_usage = bool((cr.get("streamOptions") or {}).get("isIncludeUsage"))
    return req, include_usage


def cohere_chat_response(gen: Generation, cr: dict) -> dict:
    history = [dict(h) for h in cr.get("chatHistory") or ()]
    if cr["message"]:
        history.append({"role": "USER", "message": cr["message"]})
    bot: dict = {"role": "CHATBOT", "message": gen.text}
    if gen.tool_calls:
        bot["toolCalls"] = cohere_tool_calls(gen)
    history.append(bot)
    body: dict = {"apiFormat": "COHERE", "text": gen.text, "chatHistory": history,
                  "finishReason": COHERE_FINISH[gen.finish]}
    if gen.tool_calls:
        body["toolCalls"] = cohere_tool_calls(gen)
    body["usage"] = usage_body(gen.prompt_tokens, gen.completion_tokens)
    return body


def cohere_response(gen: Generation, cr: dict, model_id: str, model: ModelInfo) -> dict:
    body = cohere_chat_response(gen, cr)
    if cr.get("isEcho"):
        body["prompt"] = cr["message"]
    return {"modelId": model_id, "modelVersion": model.version, "chatResponse": body}


# ------------------------------------------------------------------------------------------- COHEREV2

def parse_coherev2(cr: dict, model: ModelInfo, settings: dict) -> tuple[GenRequest, bool]:
    turns: list[Turn] = []
    for i, m in enumerate(cr["messages"]):
        texts, media = [], 0
        for j, part in enumerate(m.get("content") or ()):
            kind = part["type"]
            if kind == "TEXT":
                texts.append(part["text"])
            elif kind == "IMAGE_URL":
                _media_check(settings, model, "IMAGE", f"messages[{i}].content[{j}]")
                media += 1
            elif kind == "DOCUMENT":
                texts.append(orjson.dumps(part["document"]).decode())
        calls = []
        for k, c in enumerate(m.get("toolCalls") or ()):
            fn = c["function"] if isinstance(c["function"], dict) else {}
            if not fn.get("name"):
                raise bad_request(settings,
                                  f"Invalid parameter: messages[{i}].toolCalls[{k}].function.name is required.")
            args = fn.get("arguments", "{}")
            calls.append((c["id"], fn["name"], args if isinstance(args, str) else orjson.dumps(args).decode()))
        turns.append(Turn(m["role"].lower(), "".join(texts), tool_calls=calls, tool_call_id=m.get("toolCallId"),
                          media=media))
    _check_tool_results(settings, turns, "messages")
    tools = []
    for i, t in enumerate(cr.get("tools") or ()):
        if t["type"] != "FUNCTION":
            raise bad_request(settings, f"Invalid parameter: tools[{i}].type must be 'FUNCTION'.")
        fn = t["function"]
        tools.append(ToolSpec(fn["name"], fn.get("description") or "", fn.get("parameters")))
    choice = cr.get("toolsChoice")
    if choice is not None and choice not in ("REQUIRED", "NONE"):
        raise bad_request(settings, "Invalid parameter: toolsChoice must be one of ['NONE', 'REQUIRED'].")
    thinking = cr.get("thinking")
    if thinking is not None and thinking["type"] not in ("ENABLED", "DISABLED"):
        raise bad_request(settings, "Invalid parameter: thinking.type must be one of ['ENABLED', 'DISABLED'].")
    fmt = cr.get("responseFormat")
    json_mode = None
    if fmt and fmt["type"] == "JSON_OBJECT":
        json_mode = fmt.get("schema") or True
    extra = [orjson.dumps(cr["documents"]).decode()] if cr.get("documents") else []
    req = GenRequest(
        model_name=model.name, turns=turns, tools=tools, tool_choice=(choice or "auto").lower(),
        max_tokens=cr.get("maxTokens"), stop=list(cr.get("stopSequences") or ()), json_mode=json_mode,
        reasoning=model.reasoning and (thinking is None or thinking["type"] == "ENABLED"), extra_prompt=extra,
        directives=_directives_of(turns),
    )
    include_usage = bool((cr.get("streamOptions") or {}).get("isIncludeUsage"))
    return req, include_usage


def coherev2_response(gen: Generation, model_id: str, model: ModelInfo, seed: str) -> dict:
    body = {"apiFormat": "COHEREV2", "id": response_id(seed), "message": coherev2_message(gen),
            "finishReason": COHEREV2_FINISH[gen.finish],
            "usage": usage_body(gen.prompt_tokens, gen.completion_tokens, gen.reasoning_tokens)}
    return {"modelId": model_id, "modelVersion": model.version, "chatResponse": body}


def response_id(seed: str) -> str:
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


PARSERS = {"GENERIC": parse_generic, "COHERE": parse_cohere, "COHEREV2": parse_coherev2}


def run(req: GenRequest) -> list[Generation]:
    return [generate(req, i) for i in range(req.n)]
