"""Finish reasons from every upstream format, mapped to OpenAI's five values.

OCI does not settle the case: GENERIC streams send lowercase OpenAI-style values (`stop`, `tool_calls`),
other clients have seen `MAX_TOKENS`/`TOOL_CALLS`, and Cohere sends `COMPLETE`/`ERROR_TOXIC`. A client
that maps only one spelling turns a tool call into `stop`, so the lookup is case-insensitive.
"""

from __future__ import annotations

_FINISH = {
    "stop": "stop",
    "complete": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "length": "length",
    "max_tokens": "length",
    "error_limit": "length",  # Cohere: the input+output token limit was hit.
    "tool_calls": "tool_calls",
    "tool_call": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error_toxic": "content_filter",
    "safety": "content_filter",
    "error": "stop",
    "user_cancel": "stop",
}


def map_finish_reason(raw: object, *, has_tool_calls: bool = False) -> str | None:
    """OpenAI finish reason for an upstream one; `None` stays `None` (the choice is not finished).

    A plain stop after the model produced tool calls is reported as `tool_calls`: some upstreams (Cohere
    `COMPLETE`, several GENERIC models) say "stop" even when the turn ends in calls, and OpenAI clients
    only run tools when the reason is `tool_calls`.
    """
    if raw is None:
        return None
    key = str(raw).strip().lower()
    mapped = _FINISH.get(key)
    if mapped is None:
        # Unknown values (ERROR_* variants, vendor reasons such as RECITATION) have no OpenAI equivalent;
        # OpenAI clients only know the five values, so they end as a plain stop.
        mapped = "stop"
    if has_tool_calls and mapped == "stop":
        return "tool_calls"
    return mapped
