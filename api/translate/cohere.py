"""OpenAI chat completions ⇄ OCI `COHERE` chat (Cohere Command R family, v1 API).

Cohere v1 has no message list: the last user message goes in `message`, earlier turns in `chatHistory`,
system text in `preambleOverride`, and a tool round's results in `toolResults` (with `message: ""`). Its
tool calls carry no id, so the gateway synthesizes one from (turn, position, name, arguments): any replica
gives the same id for the same call, and two calls to one function in a turn get different ids. When
the client sends results back, each is paired with its call through the client's own assistant message.
"""

from __future__ import annotations

from typing import Any

from api.errors import bad_request
from api.schemas import ChatCompletionRequest
from api.translate.common import (
    Params,
    StreamTranslatorBase,
    TranslatedRequest,
    assistant_turns,
    canonical_json,
    clean_schema,
    completion,
    offered_tools,
    parse_arguments,
    synth_call_id,
    text_of,
    tool_output,
    usage_to_openai,
)
from api.translate.finish import map_finish_reason
from api.translate.options import ChatOptions

# Top-level fields of the SDK's CohereChatRequest (tests check this against oci 2.189.0).
COHERE_FIELDS = frozenset(
    {
        "apiFormat", "message", "chatHistory", "documents", "responseFormat", "isSearchQueriesOnly",
        "preambleOverride", "isStream", "streamOptions", "maxTokens", "maxInputTokens", "temperature",
        "topK", "topP", "promptTruncation", "frequencyPenalty", "presencePenalty", "seed", "isEcho", "tools",
        "toolResults", "isForceSingleStep", "stopSequences", "isRawPrompting", "citationQuality",
        "safetyMode",
    }
)  # fmt: skip

# On-demand Cohere fails above 4000 output tokens (clients such as ElevenLabs send 8192).
COHERE_ON_DEMAND_MAX_TOKENS = 4000

# JSON-schema types as the Python type names CohereParameterDefinition.type expects. Collections stay
# lowercase builtins: OCI's Cohere backend answers 500 to a bare "List".
_PY_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}


def cohere_call_id(turn: int, position: int, name: str, parameters: Any) -> str:
    """The id of a Cohere tool call: a pure function of the call, so every replica agrees on it."""
    return synth_call_id("cohere", turn, position, name, canonical_json(parameters))


def _user_text(m: Any, *, index: int) -> str:
    if isinstance(m.content, str):
        return m.content
    texts = []
    for j, part in enumerate(m.content):
        if part.type != "text":
            param = f"messages[{index}].content[{j}]"
            what = "image input" if part.type == "image_url" else f"{part.type} parts"
            raise bad_request(f"{param}: this model does not accept {what}", param=param)
        texts.append(part.text)
    return "".join(texts)


def _call(tc: Any, *, param: str) -> dict:
    if tc.type != "function":
        raise bad_request(f"{param}: only function tool calls are supported", param=param)
    return {
        "name": tc.function.name,
        "parameters": parse_arguments(tc.function.arguments, param=f"{param}.function.arguments"),
    }


def _conversation(req: ChatCompletionRequest) -> tuple[list[str], list[tuple[int, Any]], dict[str, dict]]:
    preamble: list[str] = []
    conv: list[tuple[int, Any]] = []
    calls_by_id: dict[str, dict] = {}
    for i, m in enumerate(req.messages):
        if m.role in ("system", "developer"):
            preamble.append(text_of(m.content, index=i, role=m.role)[0])
            continue
        conv.append((i, m))
        if m.role == "assistant" and m.tool_calls:
            for k, tc in enumerate(m.tool_calls):
                calls_by_id[tc.id] = _call(tc, param=f"messages[{i}].tool_calls[{k}]")
    return preamble, conv, calls_by_id


def _tool_result(i: int, m: Any, calls_by_id: dict[str, dict]) -> dict:
    call = calls_by_id.get(m.tool_call_id)
    if call is None:
        # Cohere pairs a result with its call by name and parameters, not id: the call must be known.
        raise bad_request(
            f"messages[{i}].tool_call_id: no assistant message has a tool call with id '{m.tool_call_id}'",
            param=f"messages[{i}].tool_call_id",
        )
    text, _ = text_of(m.content, index=i, role="tool")
    return {"call": call, "outputs": [tool_output(text)]}


def _history(items: list[tuple[int, Any]], calls_by_id: dict[str, dict]) -> list[dict]:
    out: list[dict] = []
    for i, m in items:
        if m.role == "user":
            out.append({"role": "USER", "message": _user_text(m, index=i)})
        elif m.role == "assistant":
            if m.function_call is not None:
                raise bad_request(
                    f"messages[{i}].function_call: the legacy function_call is not supported; use tool_calls",
                    param=f"messages[{i}].function_call",
                )
            entry: dict = {"role": "CHATBOT", "message": text_of(m.content, index=i, role="assistant")[0]}
            if m.tool_calls:
                entry["toolCalls"] = [calls_by_id[tc.id] for tc in m.tool_calls]
            out.append(entry)
        else:  # tool: one TOOL entry per round, like Cohere's own history
            result = _tool_result(i, m, calls_by_id)
            if out and out[-1]["role"] == "TOOL":
                out[-1]["toolResults"].append(result)
            else:
                out.append({"role": "TOOL", "toolResults": [result]})
    return out


def _describe(schema: dict) -> str:
    parts = [schema["description"]] if schema.get("description") else []
    if "enum" in schema:
        parts.append(f"Allowed values: {', '.join(str(v) for v in schema['enum'])}")
    if "format" in schema:
        parts.append(f"Format: {schema['format']}")
    for key in ("minimum", "maximum", "pattern"):
        if key in schema:
            parts.append(f"{key.capitalize()}: {schema[key]}")
    kind = schema.get("type")
    if kind == "array" and isinstance(schema.get("items"), dict):
        items = schema["items"]
        if items.get("type") in ("object", "array"):
            parts.append(f"Items follow this JSON schema: {canonical_json(items)}")
        elif items.get("type"):
            parts.append(f"Items: {_PY_TYPES.get(items['type'], items['type'])}")
    elif kind == "object" and schema.get("properties"):
        # Cohere v1 parameters are flat: a nested object becomes a dict described by its schema.
        inner = {k: v for k, v in schema.items() if k != "description"}
        parts.append(f"A JSON object following this schema: {canonical_json(inner)}")
    return ". ".join(parts)


def _cohere_tool(fn: Any, *, index: int) -> dict:
    schema = clean_schema(fn.parameters)
    if schema.get("type") != "object":
        param = f"tools[{index}].function.parameters"
        raise bad_request(f"{param}: Cohere tools need an object schema with named properties", param=param)
    required = set(schema.get("required") or [])
    definitions = {}
    for name, sub in (schema.get("properties") or {}).items():
        sub = sub if isinstance(sub, dict) else {}
        definition: dict = {"type": _PY_TYPES.get(sub.get("type"), "str"), "isRequired": name in required}
        description = _describe(sub)
        if description:
            definition["description"] = description
        definitions[name] = definition
    # CohereTool.description is required by the SDK.
    return {"name": fn.name, "description": fn.description or fn.name, "parameterDefinitions": definitions}


def _tools(p: Params, body: dict) -> None:
    tools, choice, name = offered_tools(p, kind="Cohere models")
    if not tools or choice == "none":
        return  # Cohere v1 has no toolChoice: "none" is honoured by offering no tools
    if choice == "function":
        tools = [t for t in tools if t.name == name]
    if choice in ("required", "function"):
        # Offering only the named tool is as close as v1 gets; forcing a call is not possible.
        p.drop(
            "tool_choice" if p.sent("tool_choice") else "function_call",
            why="Cohere v1 models cannot be forced to call a tool",
        )
    if p.get("parallel_tool_calls") is False:
        p.drop("parallel_tool_calls", why="Cohere v1 models always may call tools in parallel")
    body["tools"] = [_cohere_tool(fn, index=i) for i, fn in enumerate(tools)]


def response_format(p: Params, body: dict) -> None:
    """Cohere formats (v1 and v2) have no JSON_SCHEMA type: a schema rides on JSON_OBJECT."""
    fmt = p.req.response_format
    if fmt is None:
        return
    if fmt.type == "text":
        body["responseFormat"] = {"type": "TEXT"}
        return
    body["responseFormat"] = {"type": "JSON_OBJECT"}
    if fmt.type == "json_schema" and fmt.json_schema.schema_ is not None:
        body["responseFormat"]["schema"] = fmt.json_schema.schema_


def sampling(p: Params, body: dict) -> None:
    """Sampling parameters shared by both Cohere formats."""
    for name, field in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("frequency_penalty", "frequencyPenalty"),
        ("presence_penalty", "presencePenalty"),
        ("seed", "seed"),
    ):
        value = p.get(name)
        if value is not None:
            body[field] = value
    stop = p.get("stop")
    if stop:
        body["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    n = p.get("n")
    if n is not None and n > 1:
        p.drop("n", why="Cohere models generate one choice")
    for name in ("logit_bias", "verbosity", "prediction", "web_search_options", "audio", "moderation"):
        p.drop(name)
    if p.req.modalities and "audio" in p.req.modalities:
        p.drop("modalities", why="audio output is not supported")
    if p.get("service_tier") not in (None, "auto", "default"):
        p.drop("service_tier")
    for name in ("metadata", "store", "user", "safety_identifier", "prompt_cache_key"):
        p.drop(name)
    for name in ("prompt_cache_options", "prompt_cache_retention"):
        p.drop(name)
    documents = p.client("documents")
    if isinstance(documents, list) and documents:
        body["documents"] = documents


def chat_request_to_oci(req: ChatCompletionRequest, opts: ChatOptions) -> TranslatedRequest:
    """The OCI `chatRequest` for a COHERE (v1) deployment."""
    p = Params(req, opts)
    preamble, conv, calls_by_id = _conversation(req)
    if not conv:
        raise bad_request(
            "messages: Cohere models need a user message besides system messages", param="messages"
        )
    last_i, last = conv[-1]
    body: dict = {"apiFormat": "COHERE"}
    if last.role == "user":
        body["message"] = _user_text(last, index=last_i)
        history = conv[:-1]
    elif last.role == "tool":
        # A tool round: the trailing tool messages become `toolResults` and `message` stays empty.
        start = len(conv)
        while start > 0 and conv[start - 1][1].role == "tool":
            start -= 1
        body["message"] = ""
        body["toolResults"] = [_tool_result(i, m, calls_by_id) for i, m in conv[start:]]
        history = conv[:start]
    else:
        raise bad_request(
            f"messages[{last_i}]: for Cohere models the conversation must end with a user or tool message",
            param=f"messages[{last_i}]",
        )
    if history:
        body["chatHistory"] = _history(history, calls_by_id)
    if preamble:
        body["preambleOverride"] = "\n\n".join(preamble)
    stream = bool(req.stream)
    if stream:
        body["isStream"] = True
        body["streamOptions"] = {"isIncludeUsage": True}  # usage rides on the finish event
    sampling(p, body)
    max_tokens = p.output_tokens(fallback_cap=COHERE_ON_DEMAND_MAX_TOKENS)
    if max_tokens is not None:
        body["maxTokens"] = max_tokens
    p.drop("logprobs")
    p.drop("top_logprobs")
    if p.get("reasoning_effort") is not None:
        p.drop("reasoning_effort", why="Cohere v1 models do not reason")
    response_format(p, body)
    _tools(p, body)
    p.drop_unknown_extras(understood=frozenset({"top_k", "documents"}))
    p.apply_raw_defaults(body, fields=COHERE_FIELDS)
    return TranslatedRequest(
        chat_request=body, dropped=p.dropped, stream=stream, max_tokens=max_tokens, turn=assistant_turns(req)
    )


# --- responses -----------------------------------------------------------------------------------


def _openai_call(turn: int, position: int, call: dict) -> dict:
    name = call.get("name") or ""
    parameters = call.get("parameters") or {}
    # Sorted keys: a call restated with its keys in another order is the same call, with the same id
    # and the same arguments string, streamed or not.
    return {
        "id": cohere_call_id(turn, position, name, parameters),
        "type": "function",
        "function": {"name": name, "arguments": canonical_json(parameters)},
    }


def chat_result_to_openai(
    result: dict, *, model: str, completion_id: str, created: int, turn: int = 0
) -> dict:
    """An OCI COHERE `ChatResult` (or bare `chatResponse`) as an OpenAI `chat.completion`.

    `turn` must be the request's `TranslatedRequest.turn`: it is part of the synthesized tool-call ids.
    """
    resp = result.get("chatResponse", result)
    calls = [_openai_call(turn, k, call) for k, call in enumerate(resp.get("toolCalls") or [])]
    text = resp.get("text") or ""
    message: dict = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": map_finish_reason(resp.get("finishReason"), has_tool_calls=bool(calls)) or "stop",
    }
    return completion(
        completion_id=completion_id,
        created=created,
        model=model,
        choices=[choice],
        usage=usage_to_openai(resp.get("usage")),
    )


class CohereStreamTranslator(StreamTranslatorBase):
    """COHERE v1 SSE events → OpenAI chunks.

    Cohere sends no `[DONE]` and may keep the connection open after the finish event: the caller ends the
    stream when `.finished` is set. Usage rides on the finish event (stored on `.usage`, not emitted).
    """

    def __init__(self, model: str, completion_id: str, created: int, *, turn: int = 0) -> None:
        super().__init__(model, completion_id, created, turn=turn)
        self.error_message: str | None = None
        self._parts: list[str] = []
        self._calls: list[dict] = []
        self._emitted: dict[tuple[str, str], int] = {}

    def has_tool_calls(self, index: int) -> bool:
        return bool(self._calls)

    def _new_calls(self, calls: list) -> list[dict]:
        # Calls appear in intermediate events and are restated on the terminal one: each distinct call
        # (name + canonical arguments, counted) is emitted once, in order of first appearance.
        seen: dict[tuple[str, str], int] = {}
        out = []
        for call in calls:
            name = call.get("name") or ""
            parameters = call.get("parameters") or {}
            key = (name, canonical_json(parameters))
            seen[key] = seen.get(key, 0) + 1
            if seen[key] <= self._emitted.get(key, 0):
                continue
            self._emitted[key] = self._emitted.get(key, 0) + 1
            position = len(self._calls)
            openai_call = _openai_call(self.turn, position, call)  # (same id as the non-streamed result)
            self._calls.append(openai_call)
            out.append({"index": position, **openai_call})
            self.output_chars += len(openai_call["function"]["arguments"])
        return out

    def feed(self, event: dict) -> list[dict]:
        if event.get("usage"):
            self.usage = usage_to_openai(event["usage"])
        if event.get("errorMessage"):
            self.error_message = event["errorMessage"]
        finish = event.get("finishReason")
        text = event.get("text") or ""
        delta = self._start_delta(0)
        carried = False
        if finish is None:
            if text:
                self._parts.append(text)
                delta["content"] = text
                carried = True
        elif text:
            # Cohere's last event repeats the whole text: do not append it again. Only a tail the deltas
            # did not carry (or all of it, for a one-event stream) is new.
            sent = "".join(self._parts)
            rest = text[len(sent) :] if text.startswith(sent) else ""
            if rest:
                self._parts.append(rest)
                delta["content"] = rest
                carried = True
        if "content" in delta:
            self.output_chars += len(delta["content"])
        calls = event.get("toolCalls")
        if calls:
            new = self._new_calls(calls)
            if new:
                delta["tool_calls"] = new
                carried = True
        finish_reason = self._finish(0, finish) if finish is not None else None
        if carried:
            self.content_events += 1
        elif finish_reason is None and not delta:
            return []
        return self._chunks(0, delta, finish_reason)

    @property
    def text(self) -> str:
        """The text relayed so far."""
        return "".join(self._parts)
