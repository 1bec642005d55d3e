"""Fault injection (control endpoint and prompt directives) and the ledger."""

from __future__ import annotations

import time

import oci
import pytest
import requests

from oci_emulator.testing import chat_body, decode_events, parse_sse

CHAT = "/20231130/actions/chat"
SSE_ACCEPT = {"accept": "application/json, text/event-stream"}


def chat(emu, prompt, model="meta.llama-3.3-70b-instruct", fmt="GENERIC", stream=False, **kw):
    return emu.signed_request("POST", CHAT, chat_body(model, prompt, fmt, stream=stream, **kw),
                              headers=SSE_ACCEPT if stream else None, stream=stream)


def test_status_fault_with_rate(emulator):
    emulator.set_faults(status=429, rate=0.5)
    statuses = [chat(emulator, "hi").status_code for _ in range(6)]
    assert statuses == [200, 429, 200, 429, 200, 429]
    resp = chat(emulator, "hi")
    assert resp.status_code == 200
    resp = chat(emulator, "hi")
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["code"] == "TooManyRequests"
    entries = emulator.ledger()
    assert [e["status"] for e in entries][-2:] == [200, 429]
    assert entries[-1]["fault"].startswith("rule:") and entries[-1]["usage"] is None
    emulator.clear_faults()
    assert chat(emulator, "hi").status_code == 200


def test_status_fault_count_and_filters(emulator, client):
    emulator.set_faults(status=503, count=1, model="xai.grok-3")
    assert chat(emulator, "hi").status_code == 200
    assert chat(emulator, "hi", model="xai.grok-3").status_code == 503
    assert chat(emulator, "hi", model="xai.grok-3").status_code == 200
    emulator.set_faults(status=500, path="embedText")
    assert chat(emulator, "hi").status_code == 200


@pytest.mark.parametrize("status,code", [(429, "TooManyRequests"), (500, "InternalServerError"),
                                         (503, "ServiceUnavailable"), (400, "400")])
def test_status_directive_via_sdk(emulator, client, status, code):
    M = oci.generative_ai_inference.models
    d = M.ChatDetails(compartment_id=emulator.compartment_id,
                      serving_mode=M.OnDemandServingMode(model_id="meta.llama-3.3-70b-instruct"),
                      chat_request=M.GenericChatRequest(messages=[M.UserMessage(content=[
                          M.TextContent(text=f"hello [[emulator: status={status}]]")])]))
    with pytest.raises(oci.exceptions.ServiceError) as exc:
        client.chat(d)
    assert exc.value.status == status and exc.value.code == code


def test_latency_and_interval(emulator):
    t0 = time.monotonic()
    assert chat(emulator, "hi [[emulator: latency_ms=300]]").status_code == 200
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    resp = chat(emulator, "one two three [[emulator: interval_ms=40]]", stream=True)
    events = parse_sse(resp.content)
    assert time.monotonic() - t0 >= 0.04 * (len(events) - 1)
    emulator.set_faults(latency_ms=200)
    t0 = time.monotonic()
    chat(emulator, "hi")
    assert time.monotonic() - t0 >= 0.2


def test_cut_stream(emulator):
    resp = chat(emulator, "a b c d e f g [[emulator: cut_after=3]]", stream=True)
    raw = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in resp.iter_content(None):
            raw += chunk
    assert len(parse_sse(raw)) == 3
    entry = emulator.ledger()[-1]
    assert entry["eventsWritten"] == 3 and entry["status"] == 200
    assert entry["usage"]["completionTokens"] == 2  # "" then "Emulated", " answer"


def test_cut_non_stream(emulator):
    with pytest.raises(requests.exceptions.RequestException):
        chat(emulator, "hi [[emulator: cut_after=10]]").json()


def test_hang_until_client_gives_up(emulator):
    body = chat_body("meta.llama-3.3-70b-instruct", "hi [[emulator: hang]]")
    with pytest.raises(requests.exceptions.ReadTimeout):
        emulator.signed_request("POST", CHAT, body, timeout=0.5)
    entry = emulator.ledger(timeout=5)[-1]
    assert entry["complete"] and entry["disconnected"] and entry["eventsWritten"] == 0


def test_client_disconnect_mid_stream(emulator):
    resp = chat(emulator, "x [[emulator: words=40 interval_ms=30]]", stream=True)
    it = resp.iter_lines()
    got = [line for _, line in zip(range(6), it, strict=False) if line]
    resp.close()
    entry = emulator.ledger(timeout=5)[-1]
    assert got and entry["disconnected"] is True
    assert 3 <= entry["eventsWritten"] < 44
    assert entry["eventsAfterDisconnect"] == 0
    assert entry["usage"]["completionTokens"] < 41


def test_keep_open_cohere_stream(emulator):
    resp = chat(emulator, "Say hi [[emulator: keep_open]]", model="cohere.command-r-08-2024", fmt="COHERE",
                stream=True)
    events = []
    buf = b""
    for chunk in resp.iter_content(None):
        buf += chunk
        while b"\n\n" in buf:
            frame, buf = buf.split(b"\n\n", 1)
            events.extend(decode_events(parse_sse(frame + b"\n\n")))
        if events and "finishReason" in events[-1]:
            break  # a Cohere client must stop on finishReason: the connection stays open
    resp.close()
    entry = emulator.ledger(timeout=5)[-1]
    assert events[-1]["finishReason"] == "COMPLETE"
    assert entry["disconnected"] and entry["eventsWritten"] == len(events)


def test_ledger_since_and_reset(emulator):
    start = emulator.last_seq()
    chat(emulator, "one")
    emulator.signed_request("POST", CHAT, chat_body("meta.llama-3.3-70b-instruct", "two"),
                            headers={"opc-request-id": "MYID"})
    entries = emulator.ledger(since=start)
    assert [e["seq"] for e in entries] == [start + 1, start + 2]
    assert entries[1]["opcRequestId"] == "MYID" and entries[1]["path"] == CHAT
    assert entries[1]["responseRequestId"].startswith("MYID/")
    assert emulator.ledger(since=start + 1)[0]["seq"] == start + 2
    for key in ("signature", "schema", "status", "usage", "eventsWritten", "eventsAfterDisconnect", "disconnected"):
        assert key in entries[0]
    seq = emulator.reset()
    assert seq == start + 2 and emulator.ledger() == []
    chat(emulator, "three")
    assert emulator.ledger()[0]["seq"] == start + 3


def test_control_validation(emulator):
    with pytest.raises(RuntimeError):
        emulator.set_faults(status=429, bogus=1)
    with pytest.raises(RuntimeError):
        emulator.set_settings(finish_reason_case="title")
    with pytest.raises(RuntimeError):
        emulator.set_settings(nope=True)
