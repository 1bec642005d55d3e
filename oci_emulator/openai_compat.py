"""OpenAI-format chat completions: OCI's ``/openai/v1/chat/completions`` and Data Science model
deployments (vLLM containers) behind ``/{deploymentId}/predict`` and ``/predictWithResponseStream``."""

from __future__ import annotations

import time

from . import streams
from .errors import ApiError
from .generate import GenRequest, ToolSpec, Turn, generate, parse_directives
from .inference import Ctx, Result

_ROLES = {"system", "developer", "user", "assistant", "tool"}


def _err(message: str, param: str | None = None, status: int = 400, code: str | None = None) -> ApiError:
    return ApiError(status, code or ("invalid_request_error" if status == 400 else str(status)), message,
                    openai=True, param=param)


def _text_of(content, i: int) -> tuple[str, int]:
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise _err("content must be a string or an array of content parts", f"messages[{i}].content")
    texts, media = [], 0
    for j, part in enumerate(content):
        if not isinstance(part, dict) or "type" not in part:
            raise _err("invalid content part", f"messages[{i}].content[{j}]")
        if part["type"] == "text":
            texts.append(str(part.get("text", "")))
        else:
            media += 1
    return "".join(texts), media


def parse_openai(body, model_name: str, reasoning: bool) -> tuple[GenRequest, bool, bool]:
    if not isinstance(body, dict):
        raise _err("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _err("'messages' must be a non-empty array", "messages")
    turns: list[Turn] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise _err(f"messages[{i}].role must be one of {sorted(_ROLES)}", f"messages[{i}].role")
        role = "system" if m["role"] == "developer" else m["role"]
        text, media = _text_of(m.get("content"), i)
        calls = []
        for k, c in enumerate(m.get("tool_calls") or ()):
            fn = c.get("function") if isinstance(c, dict) else None
            if not isinstance(fn, dict) or not fn.get("name") or not c.get("id"):
                raise _err("tool call needs id and function.name", f"messages[{i}].tool_calls[{k}]")
            calls.append((c["id"], fn["name"], fn.get("arguments") or "{}"))
        if role == "tool" and not m.get("tool_call_id"):
            raise _err("tool messages need tool_call_id", f"messages[{i}].tool_call_id")
        turns.append(Turn(role, text, tool_calls=calls, tool_call_id=m.get("tool_call_id"), media=media))
    prev: set | None = None
    for i, t in enumerate(turns):
        if t.role == "assistant":
            prev = {cid for cid, _n, _a in t.tool_calls}
        elif t.role == "tool":
            if prev is None or t.tool_call_id not in prev:
                raise _err(f"Invalid parameter: 'tool_call_id' of messages[{i}] not found in 'tool_calls' of "
                           "previous message.", f"messages[{i}].tool_call_id")
        else:
            prev = None
    tools = []
    for i, t in enumerate(body.get("tools") or ()):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise _err("tools need function.name", f"tools[{i}]")
        tools.append(ToolSpec(fn["name"], fn.get("description") or "", fn.get("parameters")))
    tc = body.get("tool_choice")
    tool_choice: str | tuple = "auto"
    if isinstance(tc, str):
        tool_choice = tc
    elif isinstance(tc, dict):
        tool_choice = ("function", (tc.get("function") or {}).get("name"))
    fmt = body.get("response_format") or {}
    json_mode = None
    if fmt.get("type") == "json_object":
        json_mode = True
    elif fmt.get("type") == "json_schema":
        json_mode = (fmt.get("json_schema") or {}).get("schema") or True
    stop = body.get("stop")
    directives = {}
    for t in reversed(turns):
        if t.role == "user":
            directives = parse_directives(t.text)
            break
    req = GenRequest(
        model_name=model_name, turns=turns, tools=tools, tool_choice=tool_choice,
        parallel_tools=body.get("parallel_tool_calls") is not False,
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        stop=[stop] if isinstance(stop, str) else list(stop or ()), n=int(body.get("n") or 1),
        json_mode=json_mode, reasoning=reasoning and body.get("reasoning_effort") != "none",
        directives=directives,
    )
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return req, bool(body.get("stream")), include_usage


def completion(req: GenRequest, model: str, stream: bool, include_usage: bool, request_id: str) -> Result:
    gens = [generate(req, i) for i in range(req.n)]
    base = {"id": "chatcmpl-" + request_id[:24].lower(), "object": "chat.completion", "created": int(time.time()),
            "model": model}
    result = Result(directives=req.directives, model=model, api_format="OPENAI", openai=True,
                    prompt_tokens=gens[0].prompt_tokens, reasoning_tokens=sum(g.reasoning_tokens for g in gens),
                    completion_tokens=sum(g.completion_tokens for g in gens))
    if stream:
        base["object"] = "chat.completion.chunk"
        result.events = streams.openai_events(gens, base, include_usage)
        return result
    choices = []
    for i, g in enumerate(gens):
        msg: dict = {"role": "assistant", "content": g.text if not g.tool_calls else None}
        if g.reasoning:
            msg["reasoning_content"] = g.reasoning
        if g.tool_calls:
            msg["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}} for c in g.tool_calls]
        choices.append({"index": i, "message": msg, "logprobs": None, "finish_reason": streams.openai_finish(g.finish)})
    result.body = {**base, "choices": choices, "usage": streams.openai_usage(gens)}
    u = result.body["usage"]
    result.usage = {"promptTokens": u["prompt_tokens"], "completionTokens": u["completion_tokens"],
                    "totalTokens": u["total_tokens"]}
    return result


def handle_oci_openai(body, ctx: Ctx) -> Result:
    """POST /openai/v1/chat/completions (OCI's OpenAI-compatible endpoint)."""
    settings = ctx.settings
    compartment = ctx.headers.get("opc-compartment-id") or ctx.headers.get("compartmentid")
    if compartment is not None and compartment not in settings["compartments"]:
        raise ApiError(404, settings["not_found_code"], "Authorization failed or requested resource not found.")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise _err("'model' is required", "model")
    model = ctx.catalog.resolve_model(body["model"])
    if model is None:
        raise _err(f"The model `{body['model']}` does not exist.", "model", 404, "model_not_found")
    if not model.openai_compatible:
        raise _err(f"Model {model.name} is not supported by the OpenAI-compatible API.", "model")
    if model.rejected_params.get("maxTokens") and body.get("max_tokens") is not None:
        raise _err("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                   "'max_completion_tokens' instead.", "max_tokens", code="unsupported_parameter")
    req, stream, include_usage = parse_openai(body, model.name, model.reasoning)
    return completion(req, body["model"], stream, include_usage, ctx.request_id)


def handle_predict(body, ctx: Ctx, deployment_model: str, stream_route: bool, route: str | None) -> Result:
    """Data Science deployment running vLLM: OpenAI body at route /v1/chat/completions."""
    if route not in (None, "/v1/chat/completions"):
        raise _err(f"Route {route} is not served by this deployment.", None, 404, "not_found")
    if not isinstance(body, dict):
        raise _err("request body must be a JSON object")
    model = body.get("model", deployment_model)
    if model != deployment_model:
        raise _err(f"The model `{model}` does not exist.", "model", 404, "NotFoundError")
    req, stream, include_usage = parse_openai(body, deployment_model, False)
    if stream and not stream_route:
        raise _err("Streaming is only available on /predictWithResponseStream.", "stream")
    return completion(req, model, stream, include_usage, ctx.request_id)
