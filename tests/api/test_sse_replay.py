"""The stream relay (api/chat.py) fed upstream bytes cut anywhere, and kept alive while upstream is silent.

1. The reference's SSE transcripts (tests/fixtures/oci_sse/), served as the upstream response of a real
   `chat_completion` call split at every byte offset, give byte-for-byte the same client stream.
   (tests/translate checks the decoder + translator alone; this is the relay around them.)
2. End to end, the emulator's `split_writes` (every event written in two TCP pieces) changes nothing the
   `openai` SDK sees, for every format.
3. A stream whose first byte is slow gets keep-alive comments, then the whole answer through the SDK.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import orjson
import pytest

from api import chat
from api.context import CallContext
from api.http import ApiRequest
from api.schemas import parse_chat_request
from api.translate.sse import SSEDecoder
from models_registry.catalog import CredentialSpec, DeploymentSpec
from tests.api import chat_cases
from tests.api.chat_cases import (
    CASES,
    ask,
    assert_billed,
    from_chunks,
    ledger_entry,
)
from usage.auth import KeyPrincipal

# fixtures shared by the chat suites
chat_gateway = chat_cases.chat_gateway

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "oci_sse"

# transcript → (format, the text, reasoning, tool calls and finish reason a client must see)
EXPECTED = {
    "generic_text.sse": ("GENERIC", "Hello, world", None, [], "stop"),
    "generic_tool_calls.sse": ("GENERIC", None, None, [("call_1", "get_weather", '{"city": "Paris"}')], "tool_calls"),
    "cohere_text.sse": ("COHERE", "Hi there", None, [], "stop"),
    "coherev2_text.sse": ("COHEREV2", "Hi", None, [], "stop"),
    "coherev2_thinking.sse": ("COHEREV2", "Hi", "...", [], "stop"),
}
MODEL_IDS = {"GENERIC": "meta.llama-3.3-70b-instruct", "COHERE": "cohere.command-r-08-2024",
             "COHEREV2": "cohere.command-a-03-2025"}


def _spec(api_format: str) -> DeploymentSpec:
    known = {
        "id": 1, "name": "replay", "kind": "ondemand", "region": "us-chicago-1",
        "compartment_id": "ocid1.compartment.oc1..replay", "model_id": MODEL_IDS[api_format], "endpoint_id": "",
        "deployment_url": "", "base_url": "http://upstream.invalid", "api_format": api_format,
        "credential": CredentialSpec("environment", "API_KEY", "", ""), "supports_chat": True,
        "supports_embeddings": False, "supports_rerank": False, "supports_tools": True,
        "supports_streaming_tools": True, "supports_vision": False, "supports_reasoning": False,
        "default_max_tokens": 4096, "max_output_tokens": None, "max_tokens_field": "",
        "param_defaults": MappingProxyType({}), "unsupported_params": "drop", "force_non_stream": False,
        "drain_on_disconnect": False, "embed_truncate": "END",
    }
    # Fields added to DeploymentSpec later get a neutral value (prices are Decimals).
    values = {f.name: known.get(f.name, f.default if f.default is not dataclasses.MISSING
                                else Decimal(0) if f.name.startswith("price_") else None)
              for f in dataclasses.fields(DeploymentSpec)}
    return DeploymentSpec(**values)


class _Content:
    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = list(pieces)

    async def readany(self) -> bytes:
        return self._pieces.pop(0) if self._pieces else b""

    async def iter_any(self):
        while self._pieces:
            yield self._pieces.pop(0)


class _UpstreamResponse:
    """What `post_signed` returns (an aiohttp response), serving the transcript in the given pieces."""

    status = 200

    def __init__(self, pieces: list[bytes]) -> None:
        self.headers = {"content-type": "text/event-stream", "opc-request-id": "UPSTREAM/1/2"}
        self.content = _Content(pieces)

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def relay(monkeypatch):
    """Run one streamed chat_completion against a fake upstream; return (client bytes, usage records)."""
    from usage.recorder import recorder

    records: list = []

    async def record_durable(event, **_kw):  # settle=: the reservation, none here
        records.append(event)

    monkeypatch.setattr(recorder, "record_durable", record_durable)
    monkeypatch.setattr(recorder, "record", records.append)

    async def run(api_format: str, pieces: list[bytes]) -> tuple[bytes, list]:
        async def post_signed(*_args, **_kw):
            return _UpstreamResponse(pieces)

        monkeypatch.setattr(chat, "post_signed", post_signed)
        request = ApiRequest(method="POST", path="/v1/chat/completions", headers={}, body=b"", client_ip=None,
                             request_id="REPLAY0000000000000000000000000001")
        principal = KeyPrincipal(id=1, name="replay", prefix="sk-rep", team_id=None, team_name="",
                                 allowed_models=frozenset(), team_allowed_models=frozenset(), metadata={},
                                 expires_at=None, digest="", previous_valid_until=None)  # no limits
        ctx = CallContext(request=request, principal=principal, endpoint="chat.completions")
        ctx.public_model = "public-model"
        req = parse_chat_request(orjson.dumps({"model": "public-model", "stream": True,
                                               "stream_options": {"include_usage": True},
                                               "messages": [{"role": "user", "content": "Say hi."}]}))
        response = await chat.chat_completion(ctx, req, _spec(api_format))
        assert response.status == 200 and response.content_type == "text/event-stream"
        out = b"".join([part async for part in response.stream])
        return out, list(records)

    return run


def _events(data: bytes) -> list:
    decoder = SSEDecoder()
    payloads = decoder.feed(data) + decoder.flush()
    assert payloads[-1] == "[DONE]" and "[DONE]" not in payloads[:-1]
    events = [orjson.loads(p) for p in payloads[:-1]]
    return [{**e, "created": 0} for e in events]  # `created` is the wall clock


@pytest.mark.smoke
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_transcript_split_at_every_byte_offset_gives_the_same_client_stream(relay, name):
    from openai.types.chat import ChatCompletionChunk

    api_format, content, reasoning, calls, finish = EXPECTED[name]
    data = (TRANSCRIPTS / name).read_bytes()

    async def all_splits():
        whole, records = await relay(api_format, [data])
        reference = _events(whole)
        assert records[-1].status == 200
        for k in range(1, len(data)):
            out, _ = await relay(api_format, [data[:k], data[k:]])
            assert _events(out) == reference, f"split at byte {k}"
        bytewise, _ = await relay(api_format, [data[i : i + 1] for i in range(len(data))])
        assert _events(bytewise) == reference, "one byte per read"
        return reference

    reference = asyncio.run(all_splits())
    answer = from_chunks([ChatCompletionChunk.model_validate(e) for e in reference], {"x-request-id": "r"})
    assert (answer.content, answer.reasoning, answer.tool_calls, answer.finish_reason) == (
        content, reasoning, calls, finish)
    assert answer.usage is not None  # the client asked: upstream's usage, or the gateway's estimate


def test_usage_on_a_separate_event_after_cohere_finish_is_not_lost(relay):
    """COHEREV2 may send usage in its own event after the finish event (no [DONE], maybe in the same read)."""
    finish = b'data: {"apiFormat":"COHEREV2","message":{"role":"ASSISTANT"},"finishReason":"COMPLETE"}\n\n'
    text = b'data: {"apiFormat":"COHEREV2","message":{"role":"ASSISTANT","content":[{"type":"TEXT","text":"Hi"}]}}\n\n'
    usage = b'data: {"apiFormat":"COHEREV2","usage":{"promptTokens":5,"completionTokens":1,"totalTokens":6}}\n\n'

    async def go():
        for pieces in ([text + finish + usage], [text, finish, usage], [text + finish, usage]):
            out, records = await relay("COHEREV2", pieces)
            events = _events(out)
            assert events[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}, pieces
            assert records[-1].usage_source == "upstream" and records[-1].total_tokens == 6

    asyncio.run(go())


# --- split_writes end to end -------------------------------------------------------------------------


def test_split_writes_change_nothing_the_sdk_sees(chat_gateway):
    emulator = chat_gateway.emulator
    models = ("meta.llama-3.3-70b-instruct", "cohere.command-r-08-2024", "cohere.command-a-03-2025", "ds/odsc-llm",
              "oci-openai/grok-4")
    requests = [{"model": m, **CASES[name].build(chat_gateway, m)} for m in models for name in ("plain", "parallel")]
    before = [ask(chat_gateway, "sync", "stream", **kw) for kw in requests]
    emulator.set_settings(split_writes=True)
    for kw, expected in zip(requests, before, strict=True):
        for mode, how in (("sync", "stream"), ("async", "helper")):
            after = ask(chat_gateway, mode, how, **kw)
            assert after.visible() == expected.visible() and after.usage == expected.usage
            assert_billed(emulator, after, stream=True)


# --- keep-alive while upstream is silent --------------------------------------------------------------


class _Tap:
    """An httpx2 transport that lets the SDK read the response while recording its raw bytes."""

    def __init__(self) -> None:
        import httpx2

        self.raw = bytearray()
        outer = self

        class Transport(httpx2.HTTPTransport):
            def handle_request(self, request):
                response = super().handle_request(request)
                inner = response.stream

                class Stream(httpx2.SyncByteStream):
                    def __iter__(self):
                        for part in inner:
                            outer.raw += part
                            yield part

                    def close(self):
                        inner.close()

                response.stream = Stream()
                return response

        self.transport = Transport()


@pytest.mark.parametrize(("model", "latency_ms"), [pytest.param("meta.llama-3.3-70b-instruct", 2000,
                                                                marks=pytest.mark.smoke),
                                                   ("cohere.command-a-03-2025", 1200)])
def test_slow_first_byte_gets_keep_alives_then_the_answer_through_the_sdk(chat_gateway, settings, model, latency_ms):
    """Production: HEARTBEAT_SECONDS=15 and an upstream whose first byte takes 40 s → a keep-alive comment every
    15 s, then the answer. Scaled down here (heartbeat 0.2 s = 1/75, first byte 2 s = 1/20) so the test still
    spans ~10 heartbeats of silence but runs in ~3 s; nothing on the path depends on the absolute values (the
    gateway's upstream read timeout is 300 s, the SDK's 600 s). Events 0.3 s apart also need keep-alives."""
    import httpx2
    import openai

    settings.HEARTBEAT_SECONDS = 0.2
    tap = _Tap()
    client = openai.OpenAI(base_url=chat_gateway.api_base, api_key=chat_gateway.key, max_retries=0,
                           http_client=httpx2.Client(transport=tap.transport))
    prompt = f"Answer slowly [[emulator: latency_ms={latency_ms} interval_ms=300 words=3]]"
    start = time.monotonic()
    with client.chat.completions.stream(model=model, messages=[{"role": "user", "content": prompt}],
                                        stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
        request_id = stream._response.headers["x-request-id"]
    assert time.monotonic() - start >= latency_ms / 1000
    text = final.choices[0].message.content
    assert len(text.split()) == 3 and text.endswith(".") and final.choices[0].finish_reason == "stop"
    billed = ledger_entry(chat_gateway.emulator, request_id)["usage"]
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (billed["promptTokens"],
                                                                          billed["completionTokens"])
    raw = bytes(tap.raw)
    head, _, tail = raw.partition(b"data: ")
    assert head.count(b": keep-alive\n\n") >= latency_ms / 200 / 2 and head.replace(b": keep-alive\n\n", b"") == b""
    assert tail.count(b": keep-alive\n\n") >= 2, "keep-alives also flow between slow events"
