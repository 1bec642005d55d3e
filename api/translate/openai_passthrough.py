"""OpenAI-format upstreams: Data Science model deployments (vLLM) and OCI's `/openai/v1` endpoint.

The body is already OpenAI's: the translation only points `model` at the upstream name, always asks for
stream usage, applies the deployment's output-length default and cap, and removes what the deployment
cannot take. Responses and chunks pass through with the public model name and a stable id.
"""

from __future__ import annotations

from typing import Any

from api.errors import bad_request
from api.schemas import ChatCompletionRequest
from api.translate.common import (
    TOOL_PARAMS,
    Params,
    StreamTranslatorBase,
    TranslatedRequest,
    assistant_turns,
    synth_call_id,
)
from api.translate.options import ChatOptions


def _check_vision(req: ChatCompletionRequest) -> None:
    for i, m in enumerate(req.messages):
        if m.role == "user" and isinstance(m.content, list):
            for j, part in enumerate(m.content):
                if part.type == "image_url":
                    param = f"messages[{i}].content[{j}]"
                    raise bad_request(f"{param}: this model does not accept image input", param=param)


def chat_request_to_oci(req: ChatCompletionRequest, opts: ChatOptions) -> TranslatedRequest:
    """The OpenAI body for an OpenAI-format upstream (`chat_request` is the whole body)."""
    p = Params(req, opts)
    body = dict(req.raw)
    body["model"] = opts.model_id
    stream = bool(req.stream)
    if stream:
        stream_options = dict(body.get("stream_options") or {})
        stream_options["include_usage"] = True  # usage is always requested upstream (billing)
        body["stream_options"] = stream_options
    else:
        body.pop("stream_options", None)  # OpenAI servers reject stream_options without stream
    max_tokens = p.output_tokens()
    if max_tokens is not None:
        sent = [name for name in ("max_completion_tokens", "max_tokens") if body.get(name) is not None]
        if opts.output_tokens_field() == "maxCompletionTokens":
            # gpt-5 and o-series answer 400 to max_tokens (OCI's /openai/v1 as OpenAI does): rename it, as the
            # native GENERIC path maps it to maxCompletionTokens.
            body.pop("max_tokens", None)
            sent = ["max_completion_tokens"]
        elif not sent:
            sent = ["max_tokens"]
        for name in sent:
            body[name] = max_tokens
    if not opts.supports_vision:
        _check_vision(req)
    if not opts.supports_tools:
        for name in TOOL_PARAMS:
            if body.get(name) is not None:
                p.drop(name, why="tool calling is not supported by this model")
                body.pop(name, None)
    if body.get("reasoning_effort") is not None and not opts.supports_reasoning:
        p.drop("reasoning_effort", why="this model does not take a reasoning effort")
        body.pop("reasoning_effort", None)
    for key, value in opts.param_defaults.items():
        if body.get(key) is None and value is not None:
            body[key] = value
    return TranslatedRequest(
        chat_request=body, dropped=p.dropped, stream=stream, max_tokens=max_tokens, turn=assistant_turns(req)
    )


def _fill_call_ids(calls: list | None, *, completion_id: str, choice: int) -> None:
    for position, call in enumerate(calls or []):
        if isinstance(call, dict) and not call.get("id") and (call.get("function") or {}).get("name"):
            call["id"] = synth_call_id(completion_id, choice, call.get("index", position))


def chat_result_to_openai(
    result: dict, *, model: str, completion_id: str, created: int, turn: int = 0
) -> dict:
    """The upstream completion with the public model name and the gateway's id."""
    out = dict(result)
    out["id"] = completion_id
    out["object"] = "chat.completion"
    out["created"] = created
    out["model"] = model
    for pos, choice in enumerate(out.get("choices") or []):
        message = choice.get("message") or {}
        _fill_call_ids(
            message.get("tool_calls"), completion_id=completion_id, choice=choice.get("index", pos)
        )
    return out


class OpenAIStreamTranslator(StreamTranslatorBase):
    """OpenAI chunks from the upstream → the same chunks with our id/model/created.

    A usage chunk (`choices: []`) is stored on `.usage` and not emitted, and `usage` is removed from other
    chunks: usage was forced on upstream, the caller decides whether the client gets it. An upstream
    `{"error": ...}` event is stored on `.error` (the caller reports it).
    """

    def __init__(self, model: str, completion_id: str, created: int, *, turn: int = 0) -> None:
        super().__init__(model, completion_id, created, turn=turn)
        self.error: Any = None

    def feed(self, event: dict) -> list[dict]:
        if event.get("usage"):
            self.usage = event["usage"]
        if event.get("error") is not None and not event.get("choices"):
            self.error = event["error"]
            return []
        choices = event.get("choices")
        if not choices:
            return []
        chunk = dict(event)
        chunk.pop("usage", None)
        chunk["id"] = self.completion_id
        chunk["object"] = "chat.completion.chunk"
        chunk["created"] = self.created
        chunk["model"] = self.model
        carried = False
        for pos, choice in enumerate(choices):
            index = choice.get("index", pos)
            delta = choice.get("delta")
            if delta is None:
                delta = choice["delta"] = {}
            if index not in self._role_sent:
                self._role_sent.add(index)
                delta.setdefault("role", "assistant")
            for key in ("content", "reasoning_content", "reasoning"):
                if delta.get(key):
                    self.output_chars += len(delta[key])
                    carried = True
            if delta.get("tool_calls"):
                _fill_call_ids(delta["tool_calls"], completion_id=self.completion_id, choice=index)
                carried = True
            if choice.get("finish_reason"):
                self.finished = True
                if index == 0 or self.finish_reason is None:
                    self.finish_reason = choice["finish_reason"]
        if carried:
            self.content_events += 1
        if len(choices) == 1 and choices[0].get("finish_reason") and choices[0]["delta"].get("tool_calls"):
            # vLLM may send the last tool-call delta with the finish reason: OpenAI sends the finish reason
            # alone, and the openai SDK's stream helper relies on it (see StreamTranslatorBase._chunks).
            finish = {**chunk, "choices": [{"index": choices[0].get("index", 0), "delta": {},
                                            "logprobs": None, "finish_reason": choices[0]["finish_reason"]}]}
            chunk["choices"] = [{**choices[0], "finish_reason": None}]
            return [chunk, finish]
        return [chunk]
