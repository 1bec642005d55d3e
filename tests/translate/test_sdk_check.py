"""The SDK checker itself: it must catch what OCI rejects, or the request tests prove nothing."""

from __future__ import annotations

import pytest

from tests.translate.sdk_check import chat_details, sdk_problems

pytestmark = pytest.mark.smoke

GOOD = {
    "apiFormat": "GENERIC",
    "messages": [
        {
            "role": "USER",
            "content": [{"type": "TEXT", "text": "hi"}, {"type": "AUDIO", "audioUrl": {"url": "d"}}],
        },
        {"role": "ASSISTANT", "toolCalls": [{"id": "c", "type": "FUNCTION", "name": "f", "arguments": "{}"}]},
    ],
    "toolChoice": {"type": "NONE"},
    "tools": [{"type": "FUNCTION", "name": "f", "parameters": {"type": "object", "$anything": 1}}],
}


def problems(chat_request: dict) -> list[str]:
    return sdk_problems(chat_details(chat_request), "ChatDetails")


def test_a_valid_body_passes():
    assert problems(GOOD) == []


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            {"responseFormat": {"type": "JSON_SCHEMA", "jsonSchema": {"name": "x", "strict": True}}},
            "strict: not declared",
        ),
        ({"tools": [{"type": "FUNCTION", "name": "f", "strict": True}]}, "strict: not declared"),
        ({"messages": [{"role": "BOT"}]}, "discriminator does not name a subtype"),
        ({"messages": [{"role": "ASSISTANT", "content": None}]}, "null"),
        ({"reasoningEffort": "XHIGH"}, "not an allowed value"),
        ({"messages": [{"role": "TOOL", "content": [{"text": "x"}]}]}, "missing discriminator"),
        ({"toolChoice": {"type": "FUNCTION", "function": {"name": "f"}}}, "function: not declared"),
        ({"numGenerations": "2"}, "is not a int"),
        ({"stop": "x"}, "expected a list"),
    ],
)
def test_problems_are_found(patch, expected):
    found = problems({**GOOD, **patch})
    assert any(expected in p for p in found), found


def test_required_fields_are_checked():
    found = sdk_problems(
        {"apiFormat": "COHEREV2", "messages": [{"role": "TOOL", "content": []}]}, "BaseChatRequest"
    )
    assert any("toolCallId: required" in p for p in found)
    found = sdk_problems({"apiFormat": "COHERE"}, "BaseChatRequest")
    assert any("message: required" in p for p in found)
