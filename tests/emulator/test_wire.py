"""Wire quirks byte for byte, and the emulator's streams against the stored reference transcripts."""

from __future__ import annotations

import pathlib

import pytest

from oci_emulator.testing import chat_body, decode_events, parse_sse, shape

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "oci_sse"
CHAT = "/20231130/actions/chat"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def fixture_events(name: str) -> list:
    return decode_events(parse_sse((FIXTURES / name).read_bytes()))


def emulator_events(emu, body) -> tuple[list, object]:
    resp = emu.signed_request("POST", CHAT, body, headers={"accept": "application/json, text/event-stream"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/event-stream"
    return decode_events(parse_sse(resp.content)), resp


def skeleton(events: list) -> list:
    """Event shapes with consecutive repeats collapsed (deltas differ only in count)."""
    out = []
    for ev in events:
        s = shape(ev)
        if not out or out[-1] != s:
            out.append(s)
    return out


@pytest.mark.parametrize("name", ["generic_text.sse", "generic_tool_calls.sse", "cohere_text.sse",
                                  "coherev2_text.sse", "coherev2_thinking.sse"])
def test_fixtures_are_strict_sse(name):
    raw = (FIXTURES / name).read_bytes()
    events = parse_sse(raw)
    assert events and all(e == "[DONE]" or e.startswith("{") for e in events)


def test_generic_text_matches_fixture(emulator):
    body = chat_body("meta.llama-3.3-70b-instruct", "Hello, world", stream=True,
                     streamOptions={"isIncludeUsage": True})
    ours, _ = emulator_events(emulator, body)
    ref = fixture_events("generic_text.sse")
    assert skeleton(ours) == skeleton(ref)
    assert ours[0]["message"]["content"][0]["text"] == "" and ref[0]["message"]["content"][0]["text"] == ""
    assert all("pad" in e for e in ours if e != "[DONE]")


def test_generic_tool_calls_match_fixture(emulator):
    body = chat_body("meta.llama-3.3-70b-instruct", "get_weather for Paris", stream=True,
                     tools=[{"type": "FUNCTION", "name": "get_weather", "parameters": WEATHER}])
    ours, _ = emulator_events(emulator, body)
    ref = fixture_events("generic_tool_calls.sse")
    assert skeleton(ours) == skeleton(ref)
    args = "".join(e["message"]["toolCalls"][0].get("arguments", "") for e in ours[:-1]
                   if "toolCalls" in e["message"])
    assert args == '{"city":"Paris"}'


def test_cohere_matches_fixture(emulator):
    body = chat_body("cohere.command-r-08-2024", "Say hi.", "COHERE", stream=True,
                     streamOptions={"isIncludeUsage": True})
    ours, _ = emulator_events(emulator, body)
    ref = fixture_events("cohere_text.sse")
    assert skeleton(ours) == skeleton(ref)
    assert "[DONE]" not in ours
    assert ours[-1]["text"] == "".join(e["text"] for e in ours[:-1])


def test_coherev2_matches_fixtures(emulator):
    ours, _ = emulator_events(emulator, chat_body("cohere.command-a-03-2025", "Hi", "COHEREV2", stream=True))
    assert skeleton(ours) == skeleton(fixture_events("coherev2_text.sse"))
    ours, _ = emulator_events(emulator, chat_body("cohere.command-a-reasoning", "Hi", "COHEREV2", stream=True))
    assert skeleton(ours) == skeleton(fixture_events("coherev2_thinking.sse"))


def test_content_types_have_no_charset(emulator):
    resp = emulator.signed_request("POST", CHAT, chat_body("meta.llama-3.3-70b-instruct", "hi"))
    assert resp.headers["content-type"] == "application/json"
    resp = emulator.signed_request("POST", CHAT, chat_body("meta.no-such", "hi"))
    assert resp.status_code == 404 and resp.headers["content-type"] == "application/json"
    assert resp.json() == {"code": "NotAuthorizedOrNotFound",
                           "message": "Authorization failed or requested resource not found."}
    assert resp.headers["opc-request-id"].count("/") == 2


def test_sdk_events_match_raw_frames(emulator, client):
    import oci

    M = oci.generative_ai_inference.models
    emulator.set_settings(split_writes=True)  # chunk boundaries not aligned with events
    d = M.ChatDetails(compartment_id=emulator.compartment_id,
                      serving_mode=M.OnDemandServingMode(model_id="meta.llama-3.3-70b-instruct"),
                      chat_request=M.GenericChatRequest(messages=[M.UserMessage(content=[M.TextContent(text="a b c")])],
                                                        is_stream=True))
    sdk = [e.data for e in client.chat(d).data.events()]
    raw, _ = emulator_events(emulator, chat_body("meta.llama-3.3-70b-instruct", "a b c", stream=True))
    assert len(sdk) == len(raw) and sdk[-1] == "[DONE]"


def test_unknown_path_and_method(emulator):
    resp = emulator.signed_request("POST", "/20231130/actions/nothing", {})
    assert resp.status_code == 404 and resp.json()["code"] == "NotAuthorizedOrNotFound"
    resp = emulator.signed_request("GET", "/20231130/actions/chat")
    assert resp.status_code == 405 and resp.json()["code"] == "MethodNotAllowed"
