"""The emulator team's stored transcripts (tests/fixtures/oci_sse/) translate cleanly too."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionChunk

from api.translate import stream_translator
from tests.translate.helpers import decode_all, replay

pytestmark = pytest.mark.smoke

SHARED = Path(__file__).resolve().parents[1] / "fixtures" / "oci_sse"


def _format(name: str) -> str:
    if name.startswith("coherev2") or name.startswith("cohere_v2"):
        return "COHEREV2"
    if name.startswith("cohere"):
        return "COHERE"
    return "GENERIC"


@pytest.mark.parametrize("path", sorted(SHARED.glob("*.sse")), ids=lambda p: p.name)
def test_shared_transcript(path):
    data = path.read_bytes()
    translator = stream_translator(_format(path.name), model="m", completion_id="c", created=1)
    chunks = replay(translator, decode_all(data))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert translator.finished
    assert sum(1 for c in chunks if c["choices"][0]["finish_reason"]) == 1
    for k in range(0, len(data) + 1, 7):
        again = stream_translator(_format(path.name), model="m", completion_id="c", created=1)
        assert replay(again, decode_all(data, split=k)) == chunks
