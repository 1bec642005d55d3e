"""OpenAI chat completions ⇄ OCI `GENERIC` chat (Meta, xAI, Google, OpenAI and imported models)."""

from __future__ import annotations

from typing import Any

import orjson

from api.errors import bad_request
from api.schemas import ChatCompletionRequest
from api.translate.common import (
    Params,
    StreamTranslatorBase,
    TranslatedRequest,
    assistant_turns,
    audio_data_url,
    clean_schema,
    completion,
    file_data_url,
    function_calls,
    image_detail,
    logprobs_to_openai,
    offered_tools,
    synth_call_id,
    text_of,
    usage_to_openai,
)
from api.translate.finish import map_finish_reason
from api.translate.options import ChatOptions

# Top-level fields of the SDK's GenericChatRequest (tests check this against oci 2.189.0).
GENERIC_FIELDS = frozenset(
    {
        "apiFormat", "messages", "reasoningEffort", "verbosity", "metadata", "isStream", "streamOptions",
        "numGenerations", "seed", "isEcho", "topK", "topP", "temperature", "frequencyPenalty",
        "presencePenalty", "stop", "logProbs", "maxTokens", "maxCompletionTokens", "logitBias", "prediction",
        "responseFormat", "toolChoice", "isParallelToolCalls", "tools", "webSearchOptions", "serviceTier",
    }
)  # fmt: skip

_REASONING_EFFORT = {
    "none": "NONE",
    "minimal": "MINIMAL",
    "low": "LOW",
    "medium": "MEDIUM",
    "high": "HIGH",
    # OpenAI's newer levels have no OCI value: the closest is HIGH.
    "xhigh": "HIGH",
    "max": "HIGH",
}
_SERVICE_TIER = {"auto": "AUTO", "default": "DEFAULT", "priority": "PRIORITY", "fast": "PRIORITY"}


def _text(text: str) -> dict:
    return {"type": "TEXT", "text": text}


def _user_content(content: Any, *, index: int, opts: ChatOptions) -> list[dict]:
    if isinstance(content, str):
        return [_text(content)]
    out: list[dict] = []
    for j, part in enumerate(content):
        param = f"messages[{index}].content[{j}]"
        kind = part.type
        if kind == "text":
            out.append(_text(part.text))
        elif kind == "image_url":
            if not opts.supports_vision:
                raise bad_request(f"{param}: this model does not accept image input", param=param)
            url: dict = {"url": part.image_url.url}
            detail = image_detail(part.image_url.detail)
            if detail:
                url["detail"] = detail
            out.append({"type": "IMAGE", "imageUrl": url})
        elif kind == "input_audio":
            out.append({"type": "AUDIO", "audioUrl": {"url": audio_data_url(part)}})
        elif kind == "file":
            out.append({"type": "DOCUMENT", "documentUrl": {"url": file_data_url(part, param=param)}})
        else:
            raise bad_request(f"{param}: {kind} parts are not allowed in user messages", param=param)
    return out


def _messages(req: ChatCompletionRequest, opts: ChatOptions) -> list[dict]:
    out: list[dict] = []
    for i, m in enumerate(req.messages):
        role = m.role
        if role == "user":
            msg: dict = {"role": "USER", "content": _user_content(m.content, index=i, opts=opts)}
            if m.name:
                msg["name"] = m.name
        elif role in ("system", "developer"):
            text, _ = text_of(m.content, index=i, role=role)
            msg = {"role": role.upper(), "content": [_text(text)]}
            if m.name:
                msg["name"] = m.name
        elif role == "tool":
            text, _ = text_of(m.content, index=i, role=role)
            msg = {"role": "TOOL", "content": [_text(text)], "toolCallId": m.tool_call_id}
        else:
            msg = _assistant(m, index=i)
        out.append(msg)
    return out


def _assistant(m: Any, *, index: int) -> dict:
    if m.function_call is not None:
        raise bad_request(
            f"messages[{index}].function_call: the legacy function_call is not supported; use tool_calls",
            param=f"messages[{index}].function_call",
        )
    text, refusal = text_of(m.content, index=index, role="assistant", allow_refusal=True)
    msg: dict = {"role": "ASSISTANT"}
    if m.tool_calls:
        msg["toolCalls"] = [
            {"id": call_id, "type": "FUNCTION", "name": name, "arguments": arguments}
            for call_id, name, arguments in function_calls(m, index=index)
        ]
        # The SDK asks for a null content beside tool calls (not ""); null fields are omitted on the wire.
        if text:
            msg["content"] = [_text(text)]
    else:
        msg["content"] = [_text(text)]
    if m.name:
        msg["name"] = m.name
    if refusal or m.refusal:
        msg["refusal"] = refusal or m.refusal
    reasoning = (m.__pydantic_extra__ or {}).get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        msg["reasoningContent"] = reasoning
    return msg


def _tools(p: Params, body: dict) -> None:
    tools, choice, name = offered_tools(p, kind="this model")
    if not tools:
        return
    out = []
    for fn in tools:
        tool: dict = {"type": "FUNCTION", "name": fn.name, "parameters": clean_schema(fn.parameters)}
        if fn.description:
            tool["description"] = fn.description
        # FunctionDefinition has no `strict`: sending it is a 400 from OCI.
        out.append(tool)
    body["tools"] = out
    if p.req.tool_choice is not None or p.req.function_call is not None:
        body["toolChoice"] = (
            {"type": "FUNCTION", "name": name} if choice == "function" else {"type": choice.upper()}
        )
    parallel = p.get("parallel_tool_calls")
    if parallel is not None:
        body["isParallelToolCalls"] = bool(parallel)


def _response_format(p: Params, body: dict) -> None:
    fmt = p.req.response_format
    if fmt is None:
        return
    if fmt.type == "text":
        body["responseFormat"] = {"type": "TEXT"}
    elif fmt.type == "json_object":
        body["responseFormat"] = {"type": "JSON_OBJECT"}
    else:
        spec = fmt.json_schema
        schema: dict = {"name": spec.name}
        if spec.description:
            schema["description"] = spec.description
        if spec.schema_ is not None:
            schema["schema"] = spec.schema_
        if spec.strict is not None:
            schema["isStrict"] = spec.strict  # OpenAI's `strict` is a 400 here: OCI names it isStrict
        body["responseFormat"] = {"type": "JSON_SCHEMA", "jsonSchema": schema}


def _web_search(p: Params, body: dict) -> None:
    opts = p.req.web_search_options
    if opts is None:
        return
    out: dict = {}
    if opts.search_context_size:
        out["searchContextSize"] = opts.search_context_size.upper()
    if opts.user_location is not None:
        approx = opts.user_location.approximate
        loc = {k: getattr(approx, k) for k in ("city", "region", "country", "timezone") if getattr(approx, k)}
        if loc:
            out["userLocation"] = loc
    body["webSearchOptions"] = out


def _sampling(p: Params, body: dict) -> None:
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
    n = p.get("n")
    if n is not None and n > 1:
        body["numGenerations"] = n
    stop = p.get("stop")
    if stop:
        body["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if p.req.logit_bias:
        body["logitBias"] = p.req.logit_bias
    if p.get("logprobs"):
        # OCI's logProbs is the number of top tokens, not a flag.
        body["logProbs"] = max(int(p.get("top_logprobs") or 0), 1)
    elif p.sent("top_logprobs"):
        raise bad_request("top_logprobs: requires logprobs to be true", param="top_logprobs")


def _reasoning_and_tiers(p: Params, body: dict) -> None:
    effort = p.get("reasoning_effort")
    if effort is not None:
        if p.opts.supports_reasoning:
            body["reasoningEffort"] = _REASONING_EFFORT[effort]
        else:
            # xAI Grok answers 400 to reasoningEffort: only reasoning deployments get it.
            p.drop("reasoning_effort", why="this model does not take a reasoning effort")
    verbosity = p.get("verbosity")
    if verbosity is not None:
        body["verbosity"] = verbosity.upper()
    tier = p.get("service_tier")
    if tier is not None:
        if tier in _SERVICE_TIER:
            body["serviceTier"] = _SERVICE_TIER[tier]
        else:
            p.drop("service_tier", why=f"OCI has no '{tier}' service tier")


def chat_request_to_oci(req: ChatCompletionRequest, opts: ChatOptions) -> TranslatedRequest:
    """The OCI `chatRequest` for a GENERIC deployment."""
    p = Params(req, opts)
    body: dict = {"apiFormat": "GENERIC", "messages": _messages(req, opts)}
    stream = bool(req.stream)
    if stream:
        body["isStream"] = True
        # Usage is always requested upstream: it is the source of truth for billing, even when the
        # client did not ask for it (the caller decides whether to forward the usage chunk).
        body["streamOptions"] = {"isIncludeUsage": True}
    _sampling(p, body)
    max_tokens = p.output_tokens()
    if max_tokens is not None:
        body[opts.output_tokens_field()] = max_tokens
    _reasoning_and_tiers(p, body)
    if req.metadata:
        body["metadata"] = req.metadata
    if req.prediction is not None:
        text, _ = text_of(req.prediction.content, index=0, role="prediction")
        body["prediction"] = {"type": "CONTENT", "content": [_text(text)]}
    _response_format(p, body)
    _web_search(p, body)
    _tools(p, body)
    if req.modalities and "audio" in req.modalities:
        p.drop("modalities", why="audio output is not supported")
    for name in ("audio", "moderation", "store", "user", "safety_identifier", "prompt_cache_key"):
        p.drop(name)
    for name in ("prompt_cache_options", "prompt_cache_retention"):
        p.drop(name)
    p.drop_unknown_extras(understood=frozenset({"top_k", "reasoning_content"}))
    p.apply_raw_defaults(body, fields=GENERIC_FIELDS)
    return TranslatedRequest(
        chat_request=body, dropped=p.dropped, stream=stream, max_tokens=max_tokens, turn=assistant_turns(req)
    )


# --- responses -----------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if not content:
        return ""
    if isinstance(content, str):
        return content
    if len(content) == 1:  # the usual stream event: one text part
        part = content[0]
        return (part.get("text") or "") if isinstance(part, dict) and part.get("type") == "TEXT" else ""
    return "".join(
        part.get("text") or "" for part in content if isinstance(part, dict) and part.get("type") == "TEXT"
    )


def _annotations(items: list | None) -> list[dict] | None:
    if not items:
        return None
    out = []
    for item in items:
        cite = item.get("urlCitation") if isinstance(item, dict) else None
        if cite:
            out.append(
                {
                    "type": "url_citation",
                    "url_citation": {
                        "start_index": cite.get("startIndex"),
                        "end_index": cite.get("endIndex"),
                        "title": cite.get("title"),
                        "url": cite.get("url"),
                    },
                }
            )
    return out or None


def chat_result_to_openai(
    result: dict, *, model: str, completion_id: str, created: int, turn: int = 0
) -> dict:
    """An OCI `ChatResult` (or bare GENERIC `chatResponse`) as an OpenAI `chat.completion`."""
    resp = result.get("chatResponse", result)
    choices = []
    for pos, choice in enumerate(resp.get("choices") or []):
        index = choice.get("index", pos)
        msg = choice.get("message") or {}
        calls = []
        for k, call in enumerate(msg.get("toolCalls") or []):
            calls.append(
                {
                    "id": call.get("id") or synth_call_id(completion_id, index, k),
                    "type": "function",
                    "function": {"name": call.get("name") or "", "arguments": call.get("arguments") or "{}"},
                }
            )
        text = _content_text(msg.get("content"))
        message: dict = {"role": "assistant", "content": text if text or not calls else None}
        if msg.get("refusal"):
            message["refusal"] = msg["refusal"]
        if calls:
            message["tool_calls"] = calls
        if msg.get("reasoningContent"):
            message["reasoning_content"] = msg["reasoningContent"]
        annotations = _annotations(msg.get("annotations"))
        if annotations:
            message["annotations"] = annotations
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": logprobs_to_openai(choice.get("logprobs")),
                "finish_reason": map_finish_reason(choice.get("finishReason"), has_tool_calls=bool(calls))
                or "stop",
            }
        )
    usage = resp.get("usage")
    if usage is None and resp.get("choices"):
        usage = resp["choices"][0].get("usage")
    out = completion(
        completion_id=completion_id,
        created=created,
        model=model,
        choices=choices,
        usage=usage_to_openai(usage),
    )
    if resp.get("serviceTier"):
        out["service_tier"] = str(resp["serviceTier"]).lower()
    return out


_TEXT_ONLY = frozenset(("role", "content"))
_TEXT_CHUNK_END = b'},"logprobs":null,"finish_reason":null}]}\n\n'


class GenericStreamTranslator(StreamTranslatorBase):
    """GENERIC SSE events → OpenAI `chat.completion.chunk`s, one chunk per upstream delta event.

    `feed(event)` takes one parsed event (the caller handles `[DONE]`); the usage event is stored on
    `.usage` and not emitted (see `usage_chunk()`).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._envelopes: dict[int, bytes] = {}  # per choice index: a text chunk's bytes before the text

    def feed_sse(self, event: dict) -> list[bytes]:
        """Most events of a stream carry text and nothing else: their chunk is the bytes of this stream's
        chunk envelope around the JSON of the text (the same bytes `feed` and `encode_sse` would give)."""
        message = event.get("message")
        if (message and message.keys() <= _TEXT_ONLY and event.get("finishReason") is None
                and not event.get("usage") and not event.get("logprobs")):
            index = event.get("index") or 0
            if index in self._role_sent:
                text = _content_text(message.get("content"))
                if text:
                    self.output_chars += len(text)
                    self.content_events += 1
                    return [self._text_envelope(index) + orjson.dumps(text) + _TEXT_CHUNK_END]
        return super().feed_sse(event)

    def _text_envelope(self, index: int) -> bytes:
        envelope = self._envelopes.get(index)
        if envelope is None:
            envelope = self._envelopes[index] = (
                b'data: {"id":' + orjson.dumps(self.completion_id) + b',"object":"chat.completion.chunk","created":'
                + orjson.dumps(self.created) + b',"model":' + orjson.dumps(self.model)
                + b',"choices":[{"index":' + orjson.dumps(index) + b',"delta":{"content":'
            )
        return envelope

    def feed(self, event: dict) -> list[dict]:
        usage = event.get("usage")
        if usage:
            self.usage = usage_to_openai(usage)
        message = event.get("message")
        finish = event.get("finishReason")
        if message is None and finish is None:
            return []  # usage-only or keep-alive event (`pad` is padding, never read)
        index = event.get("index") or 0
        delta = self._start_delta(index)
        carried = False
        if message:
            text = _content_text(message.get("content"))
            if text:
                delta["content"] = text
                self.output_chars += len(text)
                carried = True
            reasoning = message.get("reasoningContent")
            if reasoning:
                delta["reasoning_content"] = reasoning
                self.output_chars += len(reasoning)
                carried = True
            if message.get("refusal"):
                delta["refusal"] = message["refusal"]
                carried = True
            calls = message.get("toolCalls")
            if calls:
                tracker = self.tracker(index)
                deltas = []
                for position, call in enumerate(calls):
                    d = tracker.update(position, call.get("id"), call.get("name"), call.get("arguments"))
                    if d is not None:
                        deltas.append(d)
                        self.output_chars += len(call.get("arguments") or "")
                if deltas:
                    delta["tool_calls"] = deltas
                    carried = True
        finish_reason = None
        if finish is not None:
            if index in self._trackers:
                late = self._trackers[index].flush()
                if late:
                    delta.setdefault("tool_calls", []).extend(late)
            finish_reason = self._finish(index, finish)
        if carried:
            self.content_events += 1
        elif finish_reason is None and not delta:
            return []
        return self._chunks(index, delta, finish_reason, logprobs_to_openai(event.get("logprobs")))
