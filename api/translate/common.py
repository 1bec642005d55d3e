"""Pieces shared by the per-format translators: the translated request, parameter handling (defaults,
dropping, output length), content helpers, tool schemas, synthesized ids, usage and stream chunks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from api.errors import bad_request
from api.schemas import ChatCompletionRequest
from api.translate.finish import map_finish_reason
from api.translate.options import ChatOptions
from api.translate.sse import encode_sse


@dataclass(slots=True)
class TranslatedRequest:
    """The upstream request body and what the translation left out.

    - `chat_request`: the OCI `chatRequest` object (camelCase), or the whole OpenAI body for passthrough.
    - `dropped`: OpenAI parameter names that were not forwarded (for `x-gateway-dropped-params`).
    - `stream`: whether the upstream call streams.
    - `max_tokens`: the output length that was sent (None when none was).
    - `turn`: number of assistant messages in the request; Cohere's synthesized tool-call ids use it,
      so pass it to that format's response translators.
    """

    chat_request: dict
    dropped: list[str] = field(default_factory=list)
    stream: bool = False
    max_tokens: int | None = None
    turn: int = 0


# Parameters whose loss never changes the answer: identifiers, caching and storage hints. They are
# listed as dropped but never rejected, even when the deployment rejects unsupported parameters.
ADVISORY_PARAMS = frozenset(
    {
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "store",
        "metadata",
    }
)

# Flags whose false value is every upstream's behaviour anyway: dropping `store: false` loses nothing.
_OFF_IS_DEFAULT = frozenset({"store", "logprobs"})

# Vendor extras the translators understand (everything else the client adds is dropped and listed).
KNOWN_EXTRAS = frozenset({"top_k", "documents", "reasoning_content", "thinking"})

_SCALAR_DEFAULTS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "reasoning_effort",
        "verbosity",
        "service_tier",
        "parallel_tool_calls",
        "logprobs",
        "top_logprobs",
        "stop",
        "n",
    }
)


class Params:
    """Reads parameters (client value, else the deployment default) and records what is dropped."""

    __slots__ = ("req", "opts", "dropped", "_extras")

    def __init__(self, req: ChatCompletionRequest, opts: ChatOptions) -> None:
        self.req = req
        self.opts = opts
        self.dropped: list[str] = []
        self._extras = req.extras

    def sent(self, name: str) -> bool:
        """The client sent `name` with a non-null value."""
        if name in self._extras:
            return self._extras[name] is not None
        return getattr(self.req, name, None) is not None

    def client(self, name: str) -> Any:
        if name in self._extras:
            return self._extras[name]
        return getattr(self.req, name, None)

    def get(self, name: str) -> Any:
        value = self.client(name)
        if value is None and name in _SCALAR_DEFAULTS:
            return self.opts.param_defaults.get(name)
        return value

    def drop(self, name: str, *, why: str = "is not supported by this model") -> None:
        """`name` cannot be honoured: list it, or reject the request when the deployment says so."""
        if not self.sent(name) or (name in _OFF_IS_DEFAULT and not self.client(name)):
            return
        if self.opts.reject_unsupported and name not in ADVISORY_PARAMS:
            raise bad_request(f"{name}: {why}", param=name)
        if name not in self.dropped:
            self.dropped.append(name)

    def drop_unknown_extras(self, *, understood: frozenset[str] = KNOWN_EXTRAS) -> None:
        """Vendor extras nobody maps are always dropped and listed, never rejected (clients add many)."""
        for name, value in self._extras.items():
            if value is not None and name not in understood and name not in self.dropped:
                self.dropped.append(name)

    def output_tokens(self, *, fallback_cap: int | None = None) -> int | None:
        """Client's max_completion_tokens or max_tokens, else the deployment default; capped, never
        rejected (the cap is a property of the deployment, not a client mistake)."""
        req = self.req
        value = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        if value is None:
            value = self.opts.default_max_tokens
        cap = self.opts.max_output_tokens if self.opts.max_output_tokens is not None else fallback_cap
        if value is not None and cap is not None and value > cap:
            value = cap
        return value

    def apply_raw_defaults(self, body: dict, *, fields: frozenset[str]) -> None:
        """Registry defaults named after a field of the OCI request (`safetyMode`) fill unset fields."""
        for key, value in self.opts.param_defaults.items():
            if key in fields and key not in body and value is not None:
                body[key] = value


def assistant_turns(req: ChatCompletionRequest) -> int:
    return sum(1 for m in req.messages if m.role == "assistant")


# --- content ------------------------------------------------------------------------------------


def text_of(content: Any, *, index: int, role: str, allow_refusal: bool = False) -> tuple[str, str | None]:
    """Text of a text-only message (system, developer, tool, assistant) and any refusal part.

    Raises a 400 naming `messages[i].content[j]` for a part that role cannot carry.
    """
    if content is None:
        return "", None
    if isinstance(content, str):
        return content, None
    texts: list[str] = []
    refusal: str | None = None
    for j, part in enumerate(content):
        if part.type == "text":
            texts.append(part.text)
        elif part.type == "refusal" and allow_refusal:
            refusal = part.refusal
        else:
            raise bad_request(
                f"messages[{index}].content[{j}]: {part.type} parts are not allowed in {role} messages",
                param=f"messages[{index}].content[{j}]",
            )
    return "".join(texts), refusal


def image_detail(detail: str | None) -> str | None:
    # OCI knows AUTO/HIGH/LOW; OpenAI's newer "original" is closest to HIGH.
    if detail is None:
        return None
    return {"auto": "AUTO", "low": "LOW", "high": "HIGH", "original": "HIGH"}.get(detail, "AUTO")


_DOC_MIME = {
    "pdf": "application/pdf",
    "txt": "text/plain",
    "md": "text/markdown",
    "csv": "text/csv",
    "json": "application/json",
    "html": "text/html",
    "htm": "text/html",
    "xml": "application/xml",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
}


def file_data_url(part: Any, *, param: str) -> str:
    """A `data:` URL for an OpenAI `file` part (file_data is raw base64 or already a data URL)."""
    f = part.file
    if f.file_data:
        if f.file_data.startswith("data:"):
            return f.file_data
        ext = (f.filename or "").rsplit(".", 1)[-1].lower() if f.filename and "." in f.filename else "pdf"
        return f"data:{_DOC_MIME.get(ext, 'application/octet-stream')};base64,{f.file_data}"
    if f.file_id:
        raise bad_request(
            f"{param}: file_id refers to OpenAI's Files API, which this gateway does not host; "
            "send the file inline as file_data",
            param=param,
        )
    raise bad_request(f"{param}: a file part needs file_data", param=param)


def audio_data_url(part: Any) -> str:
    audio = part.input_audio
    if audio.data.startswith("data:"):
        return audio.data
    return f"data:audio/{audio.format};base64,{audio.data}"


def function_calls(m: Any, *, index: int) -> list[tuple[str, str, str]]:
    """(id, name, arguments) of an assistant message's tool calls; only function calls exist upstream."""
    calls = []
    for k, call in enumerate(m.tool_calls or ()):
        if call.type != "function":
            raise bad_request(
                f"messages[{index}].tool_calls[{k}]: only function tool calls are supported",
                param=f"messages[{index}].tool_calls[{k}]",
            )
        calls.append((call.id, call.function.name, call.function.arguments or "{}"))
    return calls


def parse_arguments(arguments: str, *, param: str) -> dict:
    """Tool-call arguments (a JSON string) as an object, for formats that carry them as objects."""
    if not arguments or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise bad_request(
            f"{param}: arguments must be a JSON object encoded as a string", param=param
        ) from None
    if not isinstance(value, dict):
        raise bad_request(f"{param}: arguments must be a JSON object encoded as a string", param=param)
    return value


def tool_output(content: str) -> dict:
    """A tool result as the object Cohere expects: JSON objects as they are, anything else wrapped."""
    stripped = content.strip()
    if stripped.startswith("{"):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(value, dict):
                return value
    return {"output": content}


# --- tools ---------------------------------------------------------------------------------------


TOOL_PARAMS = ("tools", "functions", "tool_choice", "function_call", "parallel_tool_calls")


def offered_tools(params: Params, *, kind: str) -> tuple[list[Any], str, str | None]:
    """The function tools to offer and the tool choice, shared by every native format.

    Returns (the pydantic `FunctionDefinition`s, choice, function name), where choice is "auto", "none",
    "required" or "function". Legacy `functions`/`function_call` count as tools/tool_choice;
    `allowed_tools` narrows the list; non-function tools are dropped (or rejected); a deployment without
    tool support drops them all. An empty list means: send no tools (and no tool choice).
    """
    req = params.req
    tools: list[Any] = []
    if req.tools:
        for i, tool in enumerate(req.tools):
            if tool.type == "function":
                tools.append(tool.function)
            elif params.opts.reject_unsupported:
                raise bad_request(
                    f"tools[{i}]: {tool.type} tools are not supported by {kind}; only function tools",
                    param=f"tools[{i}]",
                )
            elif "tools" not in params.dropped:
                params.dropped.append("tools")
    elif req.functions:
        tools.extend(req.functions)
    if not tools:
        return [], "auto", None  # tool_choice and parallel_tool_calls mean nothing without tools
    if not params.opts.supports_tools:
        for name in TOOL_PARAMS:
            params.drop(name, why="tool calling is not supported by this model")
        return [], "auto", None
    choice, name = _tool_choice(params)
    if choice.startswith("allowed_"):
        allowed = _allowed_names(req.tool_choice)
        tools = [t for t in tools if t.name in allowed]
        if not tools:
            raise bad_request("tool_choice: none of allowed_tools is declared in tools", param="tool_choice")
        choice = choice.removeprefix("allowed_")
    if choice == "function" and not any(t.name == name for t in tools):
        raise bad_request(f"tool_choice: no function named '{name}' in tools", param="tool_choice")
    return tools, choice, name


def _tool_choice(params: Params) -> tuple[str, str | None]:
    choice = params.req.tool_choice
    if choice is None and params.req.function_call is not None and not params.req.tools:
        fc = params.req.function_call
        choice = fc if isinstance(fc, str) else {"type": "function", "function": {"name": fc["name"]}}
    if choice is None:
        return "auto", None
    if isinstance(choice, str):
        return choice, None
    kind = choice.get("type")
    if kind == "function":
        return "function", choice["function"]["name"]
    if kind == "allowed_tools":
        return f"allowed_{choice['allowed_tools']['mode']}", None
    raise bad_request("tool_choice: custom tools are not supported; only function tools", param="tool_choice")


def _allowed_names(choice: dict) -> set[str]:
    names: set[str] = set()
    for item in choice["allowed_tools"]["tools"]:
        if isinstance(item, dict):
            fn = item.get("function")
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                names.add(fn["name"])
            elif isinstance(item.get("name"), str):
                names.add(item["name"])
    return names


_DROP_SCHEMA_KEYS = frozenset({"$schema", "$id", "$comment", "$defs", "definitions", "title"})
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames")


def clean_schema(schema: dict | None) -> dict:
    """A tool's JSON schema in the subset OCI models accept.

    OCI rejects `$ref`/`$defs` and `anyOf` in function schemas ("Invalid function schema"), which
    pydantic emits for every nested model and Optional field. Like LiteLLM and langchain-oci: inline local
    refs (cycles become a plain object), take the first non-null branch of anyOf/oneOf and of type lists,
    merge allOf, drop `title`/`$schema` and null defaults, give arrays an `items` (Gemini requires one;
    untyped arrays are most often lists of strings) and keep `required` to declared properties.
    `additionalProperties` is kept: OpenAI-strict schemas set it and OCI accepts it.
    """
    if not schema:
        return {"type": "object", "properties": {}}
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update({f"#/{key}/{name}": value for name, value in schema[key].items()})
    out = _clean_node(schema, defs, ())
    if "type" not in out and "properties" in out:
        out["type"] = "object"
    if out.get("type") == "object" and "properties" not in out:
        out["properties"] = {}
    return out


def _clean_node(node: Any, defs: dict[str, Any], stack: tuple[str, ...]) -> Any:
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        target = defs.get(ref)
        if target is None or ref in stack:
            resolved: dict = {"type": "object"}  # external or recursive ref: OCI cannot express it
        else:
            resolved = _clean_node(target, defs, (*stack, ref))
        return {**resolved, **_clean_node(siblings, defs, stack)} if siblings else resolved
    for union in ("anyOf", "oneOf"):
        branches = node.get(union)
        if isinstance(branches, list) and "type" not in node:
            rest = {k: v for k, v in node.items() if k != union}
            non_null = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
            if non_null and isinstance(non_null[0], dict):
                merged = {**_clean_node(non_null[0], defs, stack), **_clean_node(rest, defs, stack)}
                return merged
            return _clean_node(rest, defs, stack)
    all_of = node.get("allOf")
    if isinstance(all_of, list) and all(isinstance(b, dict) for b in all_of):
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for branch in all_of:
            branch = _clean_node(branch, defs, stack)
            for key, value in branch.items():
                if key == "properties" and isinstance(merged.get("properties"), dict):
                    merged["properties"] = {**merged["properties"], **value}
                elif key == "required" and isinstance(merged.get("required"), list):
                    merged["required"] = [
                        *merged["required"],
                        *[r for r in value if r not in merged["required"]],
                    ]
                else:
                    merged.setdefault(key, value)
        node = merged
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_SCHEMA_KEYS or key in ("anyOf", "oneOf", "allOf"):
            continue
        if key == "default" and value is None:
            continue
        if key == "type" and isinstance(value, list):
            non_null = [t for t in value if t != "null"]
            out["type"] = non_null[0] if non_null else "string"
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            # Keys here are property names, not schema keywords: a property called "title" stays.
            out[key] = {name: _clean_node(sub, defs, stack) for name, sub in value.items()}
        elif key in _SUBSCHEMA_ONE and isinstance(value, dict):
            out[key] = _clean_node(value, defs, stack)
        elif key == "items" and isinstance(value, list):
            out[key] = _clean_node(value[0], defs, stack) if value else {"type": "string"}
        else:
            out[key] = value
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {"type": "string"}
    required = out.get("required")
    if isinstance(required, list) and isinstance(out.get("properties"), dict):
        out["required"] = [name for name in required if name in out["properties"]]
    return out


# --- ids -----------------------------------------------------------------------------------------


def synth_call_id(*parts: object) -> str:
    """A deterministic tool-call id: `call_` + 24 hex of sha256 over the parts."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()
    return "call_" + digest[:24]


def canonical_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


# --- responses -----------------------------------------------------------------------------------


def usage_to_openai(usage: dict | None) -> dict | None:
    """OCI `Usage` (camelCase) as OpenAI `usage`, with cached and reasoning token details when present."""
    if not usage:
        return None
    prompt = int(usage.get("promptTokens") or 0)
    completion = usage.get("completionTokens")
    total = usage.get("totalTokens")
    if completion is None:
        # Reasoning models that spend the whole budget thinking may omit completionTokens.
        completion = max(0, int(total) - prompt) if total is not None else 0
    completion = int(completion)
    total = int(total) if total is not None else prompt + completion
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    pdetails = usage.get("promptTokensDetails") or {}
    if pdetails.get("cachedTokens") is not None:
        out["prompt_tokens_details"] = {"cached_tokens": int(pdetails["cachedTokens"])}
    cdetails = usage.get("completionTokensDetails") or {}
    details = {}
    for src, dst in (
        ("reasoningTokens", "reasoning_tokens"),
        ("acceptedPredictionTokens", "accepted_prediction_tokens"),
        ("rejectedPredictionTokens", "rejected_prediction_tokens"),
    ):
        if cdetails.get(src) is not None:
            details[dst] = int(cdetails[src])
    if details:
        out["completion_tokens_details"] = details
    return out


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def logprobs_to_openai(logprobs: dict | None) -> dict | None:
    """OCI `Logprobs` (parallel lists; top logprobs as {token: "logprob"} maps) as OpenAI's shape."""
    if not logprobs:
        return None
    tokens = logprobs.get("tokens") or []
    values = logprobs.get("tokenLogprobs") or []
    tops = logprobs.get("topLogprobs") or []
    content = []
    for i, token in enumerate(tokens):
        top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        content.append(
            {
                "token": token,
                "logprob": _float(values[i]) if i < len(values) else 0.0,
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": _float(v), "bytes": list(t.encode())} for t, v in top.items()
                ],
            }
        )
    return {"content": content, "refusal": None}


def completion(
    *, completion_id: str, created: int, model: str, choices: list[dict], usage: dict | None
) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage,
    }


# --- streams -------------------------------------------------------------------------------------


class _Call:
    __slots__ = ("index", "id", "name", "args", "opened")

    def __init__(self, index: int, call_id: str, name: str) -> None:
        self.index = index
        self.id = call_id
        self.name = name
        self.args = ""
        self.opened = False


class ToolCallTracker:
    """Turns upstream tool-call fragments of one choice into OpenAI tool-call deltas.

    Upstreams disagree on the shape: progressive fragments addressed by position in `toolCalls`
    (Elastic fixtures), id+name first and id-less argument fragments after (gpt-oss), parallel calls one
    after another at position 0 told apart only by a new id (GPT), whole calls in one event (xAI), and
    calls with no id at all (Gemini). Each call gets a fixed `index`; its first delta carries `id`, `type`
    and `function.name`, later deltas only argument fragments. A whole call restated by a later event
    (same id, or same name and arguments) is not emitted twice.
    """

    __slots__ = ("calls", "_by_id", "_by_pos", "_id_for")

    def __init__(self, id_for: Any) -> None:
        self.calls: list[_Call] = []
        self._by_id: dict[str, _Call] = {}
        self._by_pos: dict[int, _Call] = {}
        self._id_for = id_for  # index -> synthesized id for calls that arrive without one

    def update(
        self, position: int, call_id: str | None, name: str | None, arguments: str | None
    ) -> dict | None:
        args = arguments or ""
        call: _Call | None = None
        if call_id:
            call = self._by_id.get(call_id)
            if call is not None and name and args and args == call.args:
                return None  # the whole call restated
        else:
            held = self._by_pos.get(position)
            if name and args and any(c.name == name and c.args == args for c in self.calls):
                return None  # an id-less whole call restated
            if held is not None and not (name and held.name and held.opened):
                call = held
            elif held is None and not name and self.calls:
                call = self.calls[-1]  # an orphan argument fragment continues the latest call
        if call is None:
            call = _Call(len(self.calls), call_id or self._id_for(len(self.calls)), name or "")
            self.calls.append(call)
            if call_id:
                self._by_id[call_id] = call
        elif name and not call.name:
            call.name = name
        self._by_pos[position] = call
        if not call.opened:
            call.args += args
            if not call.name:
                return None  # wait for the name: OpenAI clients expect it on the first delta
            call.opened = True
            return {
                "index": call.index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.args},
            }
        if not args:
            return None
        call.args += args
        return {"index": call.index, "function": {"arguments": args}}

    def flush(self) -> list[dict]:
        """Calls never given a name are still reported at the end rather than lost."""
        out = []
        for call in self.calls:
            if not call.opened:
                call.opened = True
                out.append(
                    {
                        "index": call.index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.args},
                    }
                )
        return out


class StreamTranslatorBase:
    """State and chunk building shared by every format's stream translator.

    Public state: `usage` (OpenAI shape, or None), `finished` (the finish event was seen),
    `content_events` (upstream events that carried text, reasoning or tool-call data),
    `output_chars` (characters of text, reasoning and arguments relayed), `finish_reason`
    (of choice 0, OpenAI spelling).
    """

    def __init__(self, model: str, completion_id: str, created: int, *, turn: int = 0) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self.turn = turn  # TranslatedRequest.turn: part of Cohere's synthesized tool-call ids
        self.usage: dict | None = None
        self.finished = False
        self.content_events = 0
        self.output_chars = 0
        self.finish_reason: str | None = None
        self._role_sent: set[int] = set()
        self._trackers: dict[int, ToolCallTracker] = {}

    def feed(self, event: dict) -> list[dict]:  # pragma: no cover - overridden
        raise NotImplementedError

    def feed_sse(self, event: dict) -> list[bytes]:
        """`feed`, with each chunk encoded as a client SSE event (formats may take a faster road to the same bytes)."""
        return [encode_sse(chunk) for chunk in self.feed(event)]

    def usage_chunk(self) -> dict | None:
        """The final OpenAI usage chunk (`choices: []`), when upstream reported usage."""
        if self.usage is None:
            return None
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": self.usage,
        }

    def tracker(self, index: int) -> ToolCallTracker:
        tracker = self._trackers.get(index)
        if tracker is None:
            tracker = ToolCallTracker(self._id_factory(index))
            self._trackers[index] = tracker
        return tracker

    def has_tool_calls(self, index: int) -> bool:
        tracker = self._trackers.get(index)
        return bool(tracker and tracker.calls)

    def _id_factory(self, choice: int) -> Any:
        completion_id = self.completion_id
        return lambda position: synth_call_id(completion_id, choice, position)

    def _start_delta(self, index: int) -> dict:
        if index in self._role_sent:
            return {}
        self._role_sent.add(index)
        return {"role": "assistant"}

    def _chunk(self, index: int, delta: dict, finish_reason: str | None = None, logprobs: Any = None) -> dict:
        if delta.get("role") and "content" not in delta and "tool_calls" not in delta:
            delta["content"] = ""  # OpenAI's first chunk carries role plus empty content
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
            ],
        }

    def _chunks(self, index: int, delta: dict, finish_reason: str | None = None, logprobs: Any = None) -> list[dict]:
        """The chunk(s) for one upstream event: tool-call deltas never share a chunk with the finish reason.

        OpenAI sends the finish reason in a chunk of its own. The `openai` SDK's stream helper relies on it:
        it closes the current tool call (`tool_calls.function.arguments.done`) when a chunk carries a new
        index or a finish reason, checking the finish reason before reading that chunk's calls, so a call
        that arrives on the finish chunk (Cohere's terminal event, COHEREV2 `toolCalls` on the finish event)
        would never be reported done.
        """
        if finish_reason is not None and delta.get("tool_calls"):
            return [self._chunk(index, delta, None, logprobs), self._chunk(index, {}, finish_reason)]
        return [self._chunk(index, delta, finish_reason, logprobs)]

    def _finish(self, index: int, raw: Any) -> str:
        reason = map_finish_reason(raw, has_tool_calls=self.has_tool_calls(index)) or "stop"
        if index == 0 or self.finish_reason is None:
            self.finish_reason = reason
        self.finished = True
        return reason
