"""The non-OCI OpenAI-compatible provider beside OCI: /provider/v1 (bearer key) and the Azure URL form."""

from __future__ import annotations

import httpx
import openai
import pytest

HELLO = [{"role": "user", "content": "Hello there"}]


def provider(emu, **kw):
    return openai.OpenAI(base_url=emu.base_url + "/provider/v1", api_key=kw.pop("api_key", emu.api_key),
                         max_retries=0, **kw)


def azure(emu, **kw):
    return openai.AzureOpenAI(azure_endpoint=emu.base_url, api_key=kw.pop("api_key", emu.api_key),
                              api_version="2024-10-21", max_retries=0, **kw)


def test_provider_chat_stream_embeddings_and_models(emulator):
    client = provider(emulator)
    r = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert r.choices[0].message.content == "Emulated answer to: Hello there" and r.model == "gpt-4o"
    chunks = list(client.chat.completions.create(model="meta-llama/Llama-3.3-70B-Instruct", messages=HELLO,
                                                 stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == r.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    e = client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert [d.index for d in e.data] == [0, 1] and e.usage.prompt_tokens > 0
    assert {m.id for m in client.models.list()} >= {"gpt-4o", "text-embedding-3-small"}
    entries = emulator.ledger(0)
    assert {e["path"] for e in entries} >= {"/provider/v1/chat/completions", "/provider/v1/embeddings"}
    assert all(e["signature"] == "api_key" for e in entries)


def test_azure_sdk_against_the_azure_form(emulator):
    client = azure(emulator)
    r = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert r.choices[0].message.content == "Emulated answer to: Hello there"
    (entry,) = [e for e in emulator.ledger(0) if e["path"].startswith("/openai/deployments/")]
    assert entry["path"] == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert entry["query"] == "api-version=2024-10-21" and entry["model"] == "gpt-4o-mini"
    assert client.embeddings.create(model="text-embedding-3-small", input="x").data[0].embedding


@pytest.mark.provokes_rejection
def test_errors_have_the_providers_shapes(emulator):
    with pytest.raises(openai.AuthenticationError) as caught:
        provider(emulator, api_key="wrong").chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        azure(emulator, api_key="wrong").chat.completions.create(model="gpt-4o", messages=HELLO)
    with pytest.raises(openai.NotFoundError) as caught:
        provider(emulator).chat.completions.create(model="gpt-9", messages=HELLO)
    assert (caught.value.body["code"], caught.value.body["param"]) == ("model_not_found", "model")
    with pytest.raises(openai.NotFoundError) as caught:
        azure(emulator).chat.completions.create(model="no-such-deployment", messages=HELLO)
    assert caught.value.body["code"] == "DeploymentNotFound"
    with pytest.raises(openai.BadRequestError):
        provider(emulator).embeddings.create(model="gpt-4o", input="x")  # a chat model does not embed
    # Azure without api-version: 404 Resource not found, as Azure answers.
    r = httpx.post(emulator.base_url + "/openai/deployments/gpt-4o/chat/completions", json={"messages": HELLO},
                   headers={"api-key": emulator.api_key})
    assert r.status_code == 404 and r.json()["error"]["message"] == "Resource not found"
