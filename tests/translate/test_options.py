"""ChatOptions and the model → format routing rule."""

from __future__ import annotations

import dataclasses

import pytest

from api.schemas import ChatCompletionRequest
from api.translate import (
    ChatOptions,
    default_api_format,
    stream_translator,
    translate_chat_request,
    translate_chat_result,
)
from tests.translate.helpers import chat

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize(
    ("model_id", "fmt"),
    [
        ("cohere.command-r-08-2024", "COHERE"),
        ("cohere.command-r-plus-08-2024", "COHERE"),
        ("cohere.command-a-03-2025", "COHEREV2"),
        ("cohere.command-a-vision", "COHEREV2"),
        ("cohere.command-a-reasoning-08-2025", "COHEREV2"),
        ("cohere.command-latest", "COHERE"),
        ("meta.llama-3.3-70b-instruct", "GENERIC"),
        ("xai.grok-4", "GENERIC"),
        ("openai.gpt-oss-120b", "GENERIC"),
        ("ocid1.generativeaiendpoint.oc1..x", "GENERIC"),
    ],
)
def test_default_api_format(model_id, fmt):
    assert default_api_format(model_id) == fmt


@pytest.mark.parametrize(
    ("model_id", "field"),
    [
        ("openai.gpt-5", "maxCompletionTokens"),
        ("openai.gpt-5-nano", "maxCompletionTokens"),
        ("openai.o1", "maxCompletionTokens"),
        ("openai.o3-mini", "maxCompletionTokens"),
        ("openai.o4-mini", "maxCompletionTokens"),
        ("openai.gpt-oss-20b", "maxTokens"),
        ("openai.gpt-4.1", "maxTokens"),
        ("meta.llama-4-scout-17b-16e-instruct", "maxTokens"),
    ],
)
def test_output_tokens_field(model_id, field):
    assert ChatOptions(model_id=model_id).output_tokens_field() == field


def test_options_are_frozen_with_defaults():
    o = ChatOptions(model_id="m")
    assert (o.api_format, o.supports_tools, o.supports_vision, o.supports_reasoning) == (
        "GENERIC",
        True,
        False,
        False,
    )
    assert o.unsupported_params == "drop" and dict(o.param_defaults) == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.model_id = "x"  # type: ignore[misc]


def test_dispatch_by_format():
    req: ChatCompletionRequest = chat()
    for fmt, key in (
        ("GENERIC", "messages"),
        ("COHERE", "message"),
        ("COHEREV2", "messages"),
        ("OPENAI", "model"),
    ):
        assert key in translate_chat_request(req, ChatOptions(model_id="x", api_format=fmt)).chat_request
        translator = stream_translator(fmt, model="p", completion_id="c", created=1, turn=2)
        assert translator.turn == 2 and translator.usage_chunk() is None
    out = translate_chat_result(
        {"text": "hi", "finishReason": "COMPLETE"},
        api_format="COHERE",
        model="p",
        completion_id="c",
        created=1,
    )
    assert out["choices"][0]["message"]["content"] == "hi"
    with pytest.raises(ValueError):
        translate_chat_request(req, ChatOptions(model_id="x", api_format="NOPE"))


def test_no_django_imports():
    import subprocess
    import sys

    code = (
        "import sys, api.translate, api.translate.sse, api.translate.errors, api.schemas;"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": "."})
