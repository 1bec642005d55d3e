"""Helpers for tests that talk to the emulator: raw request bodies and strict SSE parsing."""

from __future__ import annotations

import orjson

from .catalog import DEFAULT_COMPARTMENT


class SSEFramingError(AssertionError):
    pass


def parse_sse(raw: bytes) -> list[str]:
    """Split a data-only SSE body into event payloads, strictly: each event must be exactly one
    ``data: `` line followed by a blank line (what the SDK's sseclient needs)."""
    text = raw.decode("utf-8")
    if text and not text.endswith("\n\n"):
        raise SSEFramingError("stream does not end with a blank line")
    out = []
    for block in text.split("\n\n")[:-1]:
        lines = block.split("\n")
        if len(lines) != 1 or not lines[0].startswith("data: "):
            raise SSEFramingError(f"event is not a single 'data: ' line: {block!r}")
        out.append(lines[0][len("data: "):])
    return out


def decode_events(payloads: list[str]) -> list:
    """JSON-decode payloads; ``[DONE]`` stays the string ``"[DONE]"``."""
    return [p if p == "[DONE]" else orjson.loads(p) for p in payloads]


def shape(value):
    """A structural skeleton of an event: dict keys (minus ``pad``) and value kinds, recursively."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items() if k != "pad"}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    if isinstance(value, str):
        return "[DONE]" if value == "[DONE]" else "str"
    return type(value).__name__


def text_part(text: str) -> dict:
    return {"type": "TEXT", "text": text}


def chat_body(model: str, prompt: str, api_format: str = "GENERIC", *, stream: bool = False,
              compartment_id: str = DEFAULT_COMPARTMENT, endpoint_id: str | None = None, **request) -> dict:
    """A raw ChatDetails body with one user turn in the given format; extra keys go in chatRequest."""
    if api_format == "GENERIC":
        cr = {"apiFormat": "GENERIC", "messages": [{"role": "USER", "content": [text_part(prompt)]}]}
    elif api_format == "COHERE":
        cr = {"apiFormat": "COHERE", "message": prompt}
    else:
        cr = {"apiFormat": "COHEREV2", "messages": [{"role": "USER", "content": [text_part(prompt)]}]}
    if stream:
        cr["isStream"] = True
    cr.update(request)
    serving = ({"servingType": "DEDICATED", "endpointId": endpoint_id} if endpoint_id
               else {"servingType": "ON_DEMAND", "modelId": model})
    return {"compartmentId": compartment_id, "servingMode": serving, "chatRequest": cr}
