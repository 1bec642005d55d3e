"""OCI's OpenAI-compatible endpoint, Data Science deployments, shape settings, the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import openai
import pytest

from oci_emulator.testing import chat_body, decode_events, parse_sse

CHAT = "/20231130/actions/chat"
SSE_ACCEPT = {"accept": "application/json, text/event-stream"}
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def oai(emu, **kw):
    return openai.OpenAI(base_url=emu.base_url + "/openai/v1", api_key=kw.pop("api_key", emu.api_key),
                         max_retries=0, **kw)


def stream_events(emu, body):
    resp = emu.signed_request("POST", CHAT, body, headers=SSE_ACCEPT)
    assert resp.status_code == 200, resp.text
    return decode_events(parse_sse(resp.content))


# ------------------------------------------------------------------------------------------ /openai/v1

def test_openai_compatible_endpoint(emulator):
    client = oai(emulator)
    r = client.chat.completions.create(model="xai.grok-4", messages=[{"role": "user", "content": "Hello there"}])
    assert r.choices[0].message.content == "Emulated answer to: Hello there"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    chunks = list(client.chat.completions.create(model="meta.llama-3.3-70b-instruct", stream=True,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "Hi you"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Emulated answer to: Hi you" and chunks[-1].usage.completion_tokens > 0
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    r = client.chat.completions.create(model="openai.gpt-oss-120b", tools=tools,
                                       messages=[{"role": "user", "content": "get_weather in Madrid"}])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls" and json.loads(call.function.arguments) == {"city": "Madrid"}
    assert r.choices[0].message.reasoning_content
    assert emulator.ledger()[-1]["signature"] == "api_key"


@pytest.mark.provokes_rejection
def test_openai_compatible_errors(emulator):
    with pytest.raises(openai.AuthenticationError):
        oai(emulator, api_key="wrong").chat.completions.create(model="xai.grok-4",
                                                               messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        oai(emulator).chat.completions.create(model="cohere.command-a-03-2025",
                                              messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        oai(emulator).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        oai(emulator).chat.completions.create(model="openai.gpt-5", max_tokens=5,
                                              messages=[{"role": "user", "content": "x"}])


def test_openai_compatible_signed(emulator):
    body = {"model": "meta.llama-3.3-70b-instruct", "messages": [{"role": "user", "content": "hi"}]}
    resp = emulator.signed_request("POST", "/openai/v1/chat/completions", body,
                                   headers={"opc-compartment-id": emulator.compartment_id})
    assert resp.status_code == 200 and resp.json()["object"] == "chat.completion"
    resp = emulator.signed_request("POST", "/openai/v1/chat/completions", body,
                                   headers={"opc-compartment-id": "ocid1.compartment.oc1..other"})
    assert resp.status_code == 404


# ------------------------------------------------------------------------------------------ Data Science

def test_data_science_predict_forms(emulator):
    dep = emulator.deployment_id
    body = {"model": "odsc-llm", "messages": [{"role": "user", "content": "hi"}]}
    r1 = emulator.signed_request("POST", f"/{dep}/predict/v1/chat/completions", body)
    r2 = emulator.signed_request("POST", f"/{dep}/predict", body, headers={"route": "/v1/chat/completions"})
    assert r1.status_code == r2.status_code == 200
    assert r1.json()["choices"][0]["message"]["content"] == r2.json()["choices"][0]["message"]["content"]
    r3 = emulator.signed_request("POST", f"/{dep}/predictWithResponseStream", {**body, "stream": True},
                                 headers={"route": "/v1/chat/completions", "enable-streaming": "true",
                                          "accept": "text/event-stream"})
    assert r3.headers["content-type"] == "text/event-stream"
    events = decode_events(parse_sse(r3.content))
    assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] == "stop"
    r4 = emulator.signed_request("POST", f"/{dep}/predictWithResponseStream/v1/chat/completions",
                                 {**body, "stream": True})
    assert decode_events(parse_sse(r4.content))[-1] == "[DONE]"
    bad = emulator.signed_request("POST", "/ocid1.datasciencemodeldeployment.oc1.us-chicago-1.nope/predict", body)
    assert bad.status_code == 404
    wrong_model = emulator.signed_request("POST", f"/{dep}/predict/v1/chat/completions", {**body, "model": "x"})
    assert wrong_model.status_code == 404


def test_data_science_sdk_client(emulator):
    import oci

    client = oci.model_deployment.ModelDeploymentClient(
        emulator.oci_config(), service_endpoint=emulator.base_url, retry_strategy=oci.retry.NoneRetryStrategy(),
        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())
    r = client.predict(emulator.deployment_id, {"model": "odsc-llm", "messages": [{"role": "user", "content": "hi"}]})
    data = r.data if isinstance(r.data, (dict, str)) else r.data.text
    payload = json.loads(data) if isinstance(data, str) else data
    assert payload["choices"][0]["message"]["content"] == "Emulated answer to: hi"


# ------------------------------------------------------------------------------------------ settings

def test_finish_reason_case_and_done(emulator):
    emulator.set_settings(finish_reason_case="upper", generic_done=False)
    evs = stream_events(emulator, chat_body("meta.llama-3.3-70b-instruct", "hi", stream=True))
    assert evs[-1]["finishReason"] == "COMPLETE" and "[DONE]" not in evs
    body = chat_body("meta.llama-3.3-70b-instruct", "get_weather for Oslo", stream=True,
                     tools=[{"type": "FUNCTION", "name": "get_weather", "parameters": WEATHER}])
    assert stream_events(emulator, body)[-1]["finishReason"] == "TOOL_CALLS"
    emulator.set_settings(generic_tool_delta="whole")
    calls = [e for e in stream_events(emulator, body) if "toolCalls" in e.get("message", {})]
    assert len(calls) == 1 and set(calls[0]["message"]["toolCalls"][0]) == {"id", "type", "name", "arguments"}


@pytest.mark.parametrize("mode", ["finish", "separate", "none"])
def test_coherev2_usage_modes(emulator, mode):
    emulator.set_settings(coherev2_usage=mode)
    evs = stream_events(emulator, chat_body("cohere.command-a-03-2025", "hi", "COHEREV2", stream=True,
                                            streamOptions={"isIncludeUsage": True}))
    with_usage = [i for i, e in enumerate(evs) if "usage" in e]
    finish = next(i for i, e in enumerate(evs) if "finishReason" in e)
    expected = {"finish": [finish], "separate": [finish + 1], "none": []}[mode]
    assert with_usage == expected


@pytest.mark.parametrize("mode", ["whole", "fragments", "finish"])
def test_coherev2_tool_delta_modes(emulator, mode):
    emulator.set_settings(coherev2_tool_delta=mode)
    tools = [{"type": "FUNCTION", "function": {"name": "get_weather", "parameters": WEATHER}}]
    evs = stream_events(emulator, chat_body("cohere.command-a-03-2025", "get_weather Kyiv", "COHEREV2",
                                            stream=True, tools=tools))
    assert evs[-1]["finishReason"] == "TOOL_CALL"
    calls = [e["message"]["toolCalls"] for e in evs if "toolCalls" in e["message"]]
    if mode == "whole":
        assert len(calls) == 1 and json.loads(calls[0][0]["function"]["arguments"]) == {"city": "Kyiv"}
    elif mode == "fragments":
        assert len(calls) > 2 and "".join(c[0]["function"]["arguments"] for c in calls) == '{"city":"Kyiv"}'
    else:
        assert len(calls) == 1 and "toolCalls" in evs[-1]["message"]


# ------------------------------------------------------------------------------------------ CLI

def test_cli_serves_with_generated_config(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-m", "oci_emulator", "--port", str(port), "--workdir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        header = []
        for line in proc.stdout:
            header.append(line)
            if line.startswith("# base URL"):
                break
        text = "".join(header)
        assert "[DEFAULT]" in text and "fingerprint=" in text and f":{port}" in text
        from oci_emulator.server import EmulatorClient

        cli = EmulatorClient(f"http://127.0.0.1:{port}", config_file=str(tmp_path / "config"))
        deadline = time.monotonic() + 10
        while True:
            try:
                cli.last_seq()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        resp = cli.signed_request("POST", CHAT, chat_body("meta.llama-3.3-70b-instruct", "hi"))
        assert resp.status_code == 200
        assert cli.ledger()[-1]["signature"] == "ok"
    finally:
        proc.terminate()
        proc.wait(10)
