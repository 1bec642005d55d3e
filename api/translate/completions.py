"""Legacy completions (`POST /v1/completions`) ⇄ chat completions (pure: no Django, no I/O).

OCI has no prompt-completion API for chat models (generateText is retired), so a legacy request is served
as one chat turn per prompt and the chat answer is reshaped into `text_completion` objects and chunks.
"""

from __future__ import annotations

from typing import Any

from api.schemas import CompletionsRequest

# Legacy parameters a chat model cannot honour: sent by clients, never forwarded.
UNSUPPORTED = ("suffix", "best_of", "logprobs")

# Legacy parameters with the same name and meaning in chat completions.
_SAME = ("max_tokens", "n", "stop", "temperature", "top_p", "presence_penalty", "frequency_penalty", "seed",
         "logit_bias", "user", "stream", "stream_options")

_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


def unsupported_params(req: CompletionsRequest) -> list[str]:
    """The legacy parameters this request sets that chat cannot honour (defaults do not count)."""
    out = []
    if req.suffix:
        out.append("suffix")
    if req.best_of is not None and req.best_of != (req.n or 1):
        out.append("best_of")
    if req.logprobs is not None:
        out.append("logprobs")
    return out


def chat_body(req: CompletionsRequest, prompt: str) -> dict:
    """The chat request for one prompt. No max_tokens when the client sent none: the deployment's default
    applies (OpenAI's legacy default of 16 tokens would silently truncate nearly every answer)."""
    body: dict[str, Any] = {"model": req.model, "messages": [{"role": "user", "content": prompt}]}
    for name in _SAME:
        value = getattr(req, name)
        if value is not None:
            body[name] = value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value
    for name, value in (req.model_extra or {}).items():  # vendor extras (top_k, ...): chat decides
        body.setdefault(name, value)
    return body


def finish_reason(value: Any) -> str | None:
    if value is None:
        return None
    return _FINISH.get(value, "stop")  # tool_calls cannot happen without tools; anything else ended the text


def completion_id(request_id: str) -> str:
    return "cmpl-" + request_id.lower()


def choices_from_chat(chat: dict, *, offset: int, echo: str | None) -> list[dict]:
    """`text_completion` choices from a `chat.completion`; choice i of prompt p gets index p·n + i."""
    out = []
    for choice in chat.get("choices") or []:
        message = choice.get("message") or {}
        text = message.get("content") or ""
        out.append({
            "index": offset + int(choice.get("index") or 0),
            "text": (echo or "") + text,
            "logprobs": None,
            "finish_reason": finish_reason(choice.get("finish_reason")),
        })
    return out


def completion_object(*, cid: str, created: int, model: str, choices: list[dict], usage: dict | None) -> dict:
    body: dict = {"id": cid, "object": "text_completion", "created": created, "model": model,
                  "choices": sorted(choices, key=lambda c: c["index"])}
    if usage is not None:
        body["usage"] = usage
    return body


def chunk_from_chat(chunk: dict, *, cid: str, offset: int) -> dict | None:
    """A `text_completion` chunk from a `chat.completion.chunk`, or None when it carries no text
    (role-only and reasoning deltas). The usage-only chunk keeps `choices: []` and its `usage`."""
    choices = []
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        reason = finish_reason(choice.get("finish_reason"))
        if not text and reason is None:
            continue
        choices.append({"index": offset + int(choice.get("index") or 0), "text": text, "logprobs": None,
                        "finish_reason": reason})
    usage = chunk.get("usage")
    if not choices and not usage:
        return None
    out: dict = {"id": cid, "object": "text_completion", "created": chunk.get("created"),
                 "model": chunk.get("model"), "choices": choices}
    if usage:
        out["usage"] = usage
    return out


def echo_chunk(*, cid: str, created: int, model: str, index: int, prompt: str) -> dict:
    return {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": index, "text": prompt, "logprobs": None, "finish_reason": None}]}


def add_usage(total: dict | None, usage: dict | None) -> dict | None:
    """Sum of OpenAI usage dicts (nested token details included)."""
    if not usage:
        return total
    if total is None:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in usage.items()}
    for key, value in usage.items():
        if isinstance(value, dict):
            inner = total.setdefault(key, {})
            for k, v in value.items():
                if isinstance(v, (int, float)):
                    inner[k] = (inner.get(k) or 0) + v
        elif isinstance(value, (int, float)):
            total[key] = (total.get(key) or 0) + value
    return total
