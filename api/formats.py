"""One face for the four upstream chat formats, so api/chat.py does not branch on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models_registry.catalog import DeploymentSpec

from .translate import cohere, cohere_v2, generic, openai_passthrough
from .translate.common import TranslatedRequest
from .translate.options import ChatOptions


@dataclass(frozen=True)
class ChatFormat:
    name: str
    module: Any
    translator_class: type
    # Cohere streams send no [DONE] and may stay open after their finish event: stop there.
    stops_on_finish: bool

    def request(self, req, opts: ChatOptions) -> TranslatedRequest:
        return self.module.chat_request_to_oci(req, opts)

    def with_stream(self, chat_request: dict, stream: bool) -> dict:
        """The translated body with streaming set as the upstream call needs (it may differ from the client's)."""
        body = dict(chat_request)
        if self.name == "OPENAI":
            body["stream"] = stream
            if stream:
                body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
            else:
                body.pop("stream_options", None)
            return body
        if stream:
            body["isStream"] = True
            body["streamOptions"] = {"isIncludeUsage": True}
        else:
            body.pop("isStream", None)
            body.pop("streamOptions", None)
        return body

    def response(self, result: dict, *, model: str, completion_id: str, created: int, turn: int) -> dict:
        return self.module.chat_result_to_openai(
            result, model=model, completion_id=completion_id, created=created, turn=turn
        )

    def stream_translator(self, *, model: str, completion_id: str, created: int, turn: int):
        return self.translator_class(model, completion_id, created, turn=turn)


FORMATS = {
    "GENERIC": ChatFormat("GENERIC", generic, generic.GenericStreamTranslator, False),
    "COHERE": ChatFormat("COHERE", cohere, cohere.CohereStreamTranslator, True),
    "COHEREV2": ChatFormat("COHEREV2", cohere_v2, cohere_v2.CohereV2StreamTranslator, True),
    "OPENAI": ChatFormat("OPENAI", openai_passthrough, openai_passthrough.OpenAIStreamTranslator, False),
}


def for_deployment(d: DeploymentSpec) -> ChatFormat:
    return FORMATS[d.api_format]


def chat_options(d: DeploymentSpec) -> ChatOptions:
    return ChatOptions(
        model_id=d.model_id,
        api_format=d.api_format,
        default_max_tokens=d.default_max_tokens,
        max_output_tokens=d.max_output_tokens,
        max_tokens_field=d.max_tokens_field or None,
        supports_tools=d.supports_tools,
        supports_vision=d.supports_vision,
        supports_reasoning=d.supports_reasoning,
        unsupported_params=d.unsupported_params,
        param_defaults=d.param_defaults,
    )


def completion_to_chunks(completion: dict) -> list[dict]:
    """A whole chat.completion re-emitted as stream chunks (for deployments that cannot stream a request)."""
    base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"]}
    chunks = []
    for choice in completion.get("choices") or []:
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta: dict = {"role": "assistant"}
        if message.get("reasoning_content"):
            delta["reasoning_content"] = message["reasoning_content"]
        if message.get("content") is not None:
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {"index": i, "id": call["id"], "type": "function",
                 "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}}
                for i, call in enumerate(message["tool_calls"])
            ]
        chunks.append({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        chunks.append({**base, "choices": [finish]})
    return chunks
