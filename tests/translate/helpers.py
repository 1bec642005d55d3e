"""Small builders shared by the translation tests."""

from __future__ import annotations

from pathlib import Path

import orjson
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from api.schemas import ChatCompletionRequest, parse_chat_request
from api.translate.options import ChatOptions
from api.translate.sse import SSEDecoder, parse_event

FIXTURES = Path(__file__).parent / "fixtures"

USER = {"role": "user", "content": "Hello"}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}


def chat(**body) -> ChatCompletionRequest:
    body.setdefault("model", "public-model")
    body.setdefault("messages", [USER])
    return parse_chat_request(orjson.dumps(body))


def opts(model_id: str = "meta.llama-3.3-70b-instruct", **kw) -> ChatOptions:
    return ChatOptions(model_id=model_id, **kw)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def decode_all(data: bytes, *, split: int | None = None) -> list[str]:
    decoder = SSEDecoder()
    if split is None:
        out = decoder.feed(data)
    else:
        out = decoder.feed(data[:split]) + decoder.feed(data[split:])
    return out + decoder.flush()


def replay(translator, payloads: list[str]) -> list[dict]:
    """Feed payloads to a stream translator until `[DONE]` or its finish (for formats without [DONE])."""
    chunks: list[dict] = []
    for payload in payloads:
        event = parse_event(payload)
        if event is None:
            break
        chunks.extend(translator.feed(event))
    return chunks


def accumulate(chunks: list[dict]):
    """Accumulate chunks exactly like the openai SDK does; returns its completion snapshot."""
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    return state.current_completion_snapshot
