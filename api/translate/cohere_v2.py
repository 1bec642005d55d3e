"""OpenAI chat completions ⇄ OCI `COHEREV2` chat (Cohere Command A family, vision and reasoning).

V2 is close to OpenAI: a message list with nested tool calls `{id, type: "FUNCTION", function: {name,
arguments}}`, IMAGE_URL parts and THINKING content. SDK 2.189.0 requires an assistant `content` (even
beside tool calls), a tool message's `content` and `toolCallId`, and a tool definition's `type`.
The stream's tool-call and usage shapes are UNVERIFIED upstream, so the stream translator accepts whole
calls or fragments and usage on the finish event or on a separate event.
"""

from __future__ import annotations

from typing import Any

import orjson

from api.errors import bad_request
from api.schemas import ChatCompletionRequest
from api.translate.cohere import response_format, sampling
from api.translate.common import (
    Params,
    StreamTranslatorBase,
    TranslatedRequest,
    assistant_turns,
    clean_schema,
    completion,
    function_calls,
    image_detail,
    offered_tools,
    synth_call_id,
    text_of,
    usage_to_openai,
)
from api.translate.finish import map_finish_reason
from api.translate.options import ChatOptions

# Top-level fields of the SDK's CohereChatRequestV2 (tests check this against oci 2.189.0).
COHEREV2_FIELDS = frozenset(
    {
        "apiFormat", "messages", "documents", "citationOptions", "toolsChoice", "tools",
        "isStrictToolsEnabled", "isLogProbsEnabled", "thinking", "responseFormat", "isSearchQueriesOnly",
        "streamOptions", "isStream", "maxTokens", "temperature", "topK", "topP", "frequencyPenalty",
        "presencePenalty", "seed", "stopSequences", "priority", "isRawPrompting", "safetyMode",
    }
)  # fmt: skip


def _text(text: str) -> dict:
    return {"type": "TEXT", "text": text}


def _user_content(content: Any, *, index: int, opts: ChatOptions) -> list[dict]:
    if isinstance(content, str):
        return [_text(content)]
    out = []
    for j, part in enumerate(content):
        param = f"messages[{index}].content[{j}]"
        if part.type == "text":
            out.append(_text(part.text))
        elif part.type == "image_url":
            if not opts.supports_vision:
                raise bad_request(f"{param}: this model does not accept image input", param=param)
            url: dict = {"url": part.image_url.url}
            detail = image_detail(part.image_url.detail)
            if detail:
                url["detail"] = detail
            out.append({"type": "IMAGE_URL", "imageUrl": url})  # IMAGE_URL here, IMAGE in GENERIC
        else:
            raise bad_request(f"{param}: this model does not accept {part.type} parts", param=param)
    return out


def _assistant(m: Any, *, index: int) -> dict:
    if m.function_call is not None:
        raise bad_request(
            f"messages[{index}].function_call: the legacy function_call is not supported; use tool_calls",
            param=f"messages[{index}].function_call",
        )
    text, _ = text_of(m.content, index=index, role="assistant", allow_refusal=True)
    content: list[dict] = []
    reasoning = (m.__pydantic_extra__ or {}).get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "THINKING", "thinking": reasoning})
    if text:
        content.append(_text(text))
    # SDK 2.189.0 requires `content` even when the turn is only tool calls: send it, possibly empty.
    msg: dict = {"role": "ASSISTANT", "content": content}
    if m.tool_calls:
        msg["toolCalls"] = [
            {"id": call_id, "type": "FUNCTION", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in function_calls(m, index=index)
        ]
    return msg


def _messages(req: ChatCompletionRequest, opts: ChatOptions) -> list[dict]:
    out = []
    for i, m in enumerate(req.messages):
        if m.role in ("system", "developer"):
            out.append({"role": "SYSTEM", "content": [_text(text_of(m.content, index=i, role=m.role)[0])]})
        elif m.role == "user":
            out.append({"role": "USER", "content": _user_content(m.content, index=i, opts=opts)})
        elif m.role == "tool":
            text, _ = text_of(m.content, index=i, role="tool")
            out.append({"role": "TOOL", "toolCallId": m.tool_call_id, "content": [_text(text)]})
        else:
            out.append(_assistant(m, index=i))
    return out


def _tools(p: Params, body: dict) -> None:
    tools, choice, name = offered_tools(p, kind="Cohere models")
    if not tools:
        return
    if choice == "function":
        # V2 cannot name a tool: REQUIRED with only that tool offered forces exactly it.
        tools = [t for t in tools if t.name == name]
        body["toolsChoice"] = "REQUIRED"
    elif choice in ("none", "required"):
        body["toolsChoice"] = choice.upper()
    if p.get("parallel_tool_calls") is False:
        p.drop("parallel_tool_calls", why="Cohere models always may call tools in parallel")
    out = []
    for fn in tools:
        function: dict = {"name": fn.name, "parameters": clean_schema(fn.parameters)}
        if fn.description:
            function["description"] = fn.description
        out.append({"type": "FUNCTION", "function": function})  # `type` is required and not defaulted
    body["tools"] = out
    if any(fn.strict for fn in tools):
        body["isStrictToolsEnabled"] = True


def _thinking(p: Params, body: dict) -> None:
    effort = p.get("reasoning_effort")
    thinking = p.client("thinking")
    if effort is None and not isinstance(thinking, dict):
        return
    if not p.opts.supports_reasoning:
        p.drop("reasoning_effort", why="this model does not reason")
        p.drop("thinking", why="this model does not reason")
        return
    if isinstance(thinking, dict):
        enabled = str(thinking.get("type", "enabled")).lower() != "disabled"
        budget = thinking.get("budget_tokens", thinking.get("token_budget"))
    else:
        enabled = effort not in ("none", "minimal")
        budget = None
    body["thinking"] = {"type": "ENABLED" if enabled else "DISABLED"}
    if enabled and isinstance(budget, int) and budget > 0:
        body["thinking"]["tokenBudget"] = budget


def chat_request_to_oci(req: ChatCompletionRequest, opts: ChatOptions) -> TranslatedRequest:
    """The OCI `chatRequest` for a COHEREV2 deployment."""
    p = Params(req, opts)
    body: dict = {"apiFormat": "COHEREV2", "messages": _messages(req, opts)}
    stream = bool(req.stream)
    if stream:
        body["isStream"] = True
        body["streamOptions"] = {"isIncludeUsage": True}
    sampling(p, body)
    max_tokens = p.output_tokens()
    if max_tokens is not None:
        body["maxTokens"] = max_tokens
    p.drop("logprobs")
    p.drop("top_logprobs")
    response_format(p, body)
    _thinking(p, body)
    _tools(p, body)
    p.drop_unknown_extras(understood=frozenset({"top_k", "documents", "thinking", "reasoning_content"}))
    p.apply_raw_defaults(body, fields=COHEREV2_FIELDS)
    return TranslatedRequest(
        chat_request=body, dropped=p.dropped, stream=stream, max_tokens=max_tokens, turn=assistant_turns(req)
    )


# --- responses -----------------------------------------------------------------------------------


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _split_content(content: Any) -> tuple[str, str]:
    """(text, thinking) of a V2 content list."""
    if not content:
        return "", ""
    if isinstance(content, str):
        return content, ""
    texts, thoughts = [], []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "TEXT":
            texts.append(part.get("text") or "")
        elif part.get("type") == "THINKING":
            thoughts.append(part.get("thinking") or "")
    return "".join(texts), "".join(thoughts)


def chat_result_to_openai(
    result: dict, *, model: str, completion_id: str, created: int, turn: int = 0
) -> dict:
    """An OCI COHEREV2 `ChatResult` (or bare `chatResponse`) as an OpenAI `chat.completion`."""
    resp = result.get("chatResponse", result)
    msg = resp.get("message") or {}
    text, thinking = _split_content(msg.get("content"))
    calls = []
    for k, call in enumerate(msg.get("toolCalls") or []):
        fn = call.get("function") or {}
        calls.append(
            {
                "id": call.get("id") or synth_call_id(completion_id, 0, k),
                "type": "function",
                "function": {
                    "name": fn.get("name") or "",
                    "arguments": _arguments(fn.get("arguments")) or "{}",
                },
            }
        )
    message: dict = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    # The tool plan ("I will look up ...") is the model's reasoning before its calls.
    reasoning = "\n".join(part for part in (thinking, msg.get("toolPlan") or "") if part)
    if reasoning:
        message["reasoning_content"] = reasoning
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


def _unsent(text: str, parts: list[str]) -> str:
    """The part of a terminal event's `text` that earlier deltas did not already carry.

    A terminal text that starts with everything sent is a restatement (only its tail is new); any other
    text is taken as a genuine last fragment (V2's terminal shape is unverified; the capture has none).
    """
    if not text or not parts:
        return text
    sent = "".join(parts)
    return text[len(sent) :] if text.startswith(sent) else text


class CohereV2StreamTranslator(StreamTranslatorBase):
    """COHEREV2 SSE events → OpenAI chunks (no `[DONE]` upstream: end when `.finished` is set)."""

    def __init__(self, model: str, completion_id: str, created: int, *, turn: int = 0) -> None:
        super().__init__(model, completion_id, created, turn=turn)
        self._parts: list[str] = []
        self._thoughts: list[str] = []
        self._plan_started = False

    def _reasoning(self, thinking: str, plan: str, *, final: bool) -> str:
        """The reasoning an event adds: THINKING text, then the tool plan, joined by a newline as in the
        non-streamed answer (the plan may arrive in pieces: only its first piece is separated)."""
        if final:
            restated = "\n".join(part for part in (thinking, plan) if part)
            sent = "".join(self._thoughts)
            if sent and restated.startswith(sent):
                return restated[len(sent) :]  # a terminal event restating the turn: only its tail is new
        piece = thinking
        if plan:
            if not self._plan_started and (thinking or self._thoughts):
                piece += "\n"
            self._plan_started = True
            piece += plan
        return piece

    def feed(self, event: dict) -> list[dict]:
        if event.get("usage"):
            self.usage = usage_to_openai(event["usage"])
        message = event.get("message")
        finish = event.get("finishReason")
        if message is None and finish is None:
            return []  # a usage-only or keep-alive event
        delta = self._start_delta(0)
        carried = False
        if message:
            text, thinking = _split_content(message.get("content"))
            reasoning = self._reasoning(thinking, message.get("toolPlan") or "", final=finish is not None)
            if finish is not None:
                # A terminal event that restates the whole text must not append it again.
                text = _unsent(text, self._parts)
            if text:
                self._parts.append(text)
                delta["content"] = text
                carried = True
            if reasoning:
                self._thoughts.append(reasoning)
                delta["reasoning_content"] = reasoning
                carried = True
            calls = message.get("toolCalls")
            if calls:
                tracker = self.tracker(0)
                deltas = []
                for position, call in enumerate(calls):
                    fn = call.get("function") or {}
                    d = tracker.update(
                        position, call.get("id"), fn.get("name"), _arguments(fn.get("arguments"))
                    )
                    if d is not None:
                        deltas.append(d)
                        self.output_chars += len(d["function"].get("arguments") or "")
                if deltas:
                    delta["tool_calls"] = deltas
                    carried = True
        for key in ("content", "reasoning_content"):
            self.output_chars += len(delta.get(key, ""))
        finish_reason = None
        if finish is not None:
            late = self._trackers[0].flush() if 0 in self._trackers else []
            if late:
                delta.setdefault("tool_calls", []).extend(late)
            finish_reason = self._finish(0, finish)
        if carried:
            self.content_events += 1
        elif finish_reason is None and not delta:
            return []
        return self._chunks(0, delta, finish_reason)
