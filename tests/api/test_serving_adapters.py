"""Both ways of serving /v1 (the raw ASGI adapter and Django's async views) behave the same."""

import asyncio
import time

import httpx
import pytest

from tests.conftest import GatewayHandle, LiveGateway

MODEL = "meta.llama-3.3-70b-instruct"


@pytest.fixture(scope="module")
def django_views_gateway(django_db_setup, django_db_blocker):
    from gateway_project.asgi import build_application

    server = LiveGateway(app=build_application("django")).start()
    yield server
    with django_db_blocker.unblock():
        server.stop()


@pytest.fixture(params=["asgi", "django"])
def served(request, gateway, django_views_gateway):
    if request.param == "asgi":
        return gateway
    return GatewayHandle(django_views_gateway, gateway.emulator, gateway.key)


def test_chat_stream_and_errors(served):
    client = served.openai()
    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "Emulated answer to: hi"
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Emulated answer to: hi"
    headers = {"Authorization": f"Bearer {served.key}"}
    assert httpx.get(served.api_base + "/chat/completions", headers=headers).status_code == 405
    assert httpx.get(served.api_base + "/models/" + MODEL, headers=headers).json()["id"] == MODEL
    assert httpx.get(served.base_url + "/models", headers=headers).status_code == 200  # no prefix
    response = httpx.post(served.api_base + "/chat/completions", headers=headers, content=b"{")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert response.headers["x-request-id"]


def test_client_disconnect_stops_upstream(served):
    async def leave_early():
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"model": MODEL, "stream": True,
                    "messages": [{"role": "user", "content": "go [[emulator: words=200 interval_ms=20]]"}]}
            async with client.stream("POST", served.api_base + "/chat/completions", json=body,
                                     headers={"Authorization": f"Bearer {served.key}"}) as response:
                seen = 0
                async for line in response.aiter_lines():
                    seen += line.startswith("data: ")
                    if seen >= 3:
                        return response.headers["x-request-id"]

    request_id = asyncio.run(leave_early())
    deadline = time.monotonic() + 5
    while True:
        entry = [e for e in served.emulator.ledger(0, wait=False) if e["opcRequestId"] == request_id][0]
        if entry["complete"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert entry["disconnected"] and entry["eventsAfterDisconnect"] <= 3
