"""`openai_compatible` deployments: providers outside OCI (vLLM, Azure OpenAI, another gateway) behind the
same keys, limits and usage, and namespaced public names with wildcard routes.

The shared chat cases (plain, tools, tool results, vision ...) run against both provider forms in
test_chat_generic.py; this file covers the wire (URL, key header, api-version), the key's storage, name
resolution, allowlists, embeddings and the errors a misconfigured provider gives.
"""

from __future__ import annotations

import openai
import pytest
from django.db import connection

from tests.api import chat_cases
from tests.api.chat_cases import PLAIN, answer_to, ask, assert_billed, ledger_entry, usage_record

chat_gateway = chat_cases.chat_gateway
upstream_bodies = chat_cases.upstream_bodies

MESSAGES = [{"role": "user", "content": PLAIN}]


def _provider(emulator, name: str, public_names: list[str], **fields):
    """A provider deployment (the emulator's /provider/v1 unless told otherwise) routed from `public_names`."""
    from models_registry import bus
    from models_registry.models import Deployment, PublicModel, Route

    fields = {"kind": "openai_compatible", "api_format": "OPENAI", "base_url": emulator.base_url + "/provider/v1",
              "api_key_env": chat_cases.PROVIDER_KEY_ENV, **fields}
    deployment = Deployment.objects.create(name=name, **fields)
    for public in public_names:
        pm = PublicModel.objects.create(name=public)
        Route.objects.create(public_model=pm, deployment=deployment)
    bus.bump("catalog")
    return deployment


def test_bearer_provider_on_the_wire(chat_gateway, upstream_bodies):
    emulator = chat_gateway.emulator
    for stream in (False, True):
        answer = ask(chat_gateway, "sync", "stream" if stream else "create", model="vllm/gpt-4o", messages=MESSAGES)
        assert answer.content == answer_to(PLAIN) and answer.model == "vllm/gpt-4o"
        entry = assert_billed(emulator, answer, stream=stream)
        assert entry["path"] == "/provider/v1/chat/completions" and entry["signature"] == "api_key"
        (sent,) = upstream_bodies[answer.request_id]
        assert sent["body"]["model"] == "gpt-4o"
        record = usage_record(answer.request_id)
        assert (record.public_model, record.deployment, record.usage_source) == (
            "vllm/gpt-4o", "x-vllm-gpt-4o", "upstream")
        assert record.total_tokens == answer.usage["total_tokens"]


def test_azure_form_sends_api_key_header_and_version(chat_gateway, monkeypatch):
    import api.upstream.client as client

    emulator = chat_gateway.emulator
    seen = []
    real_post = client.session

    def spying_session():
        s = real_post()

        class Spy:
            def __getattr__(self, name):
                return getattr(s, name)

            def post(self, url, **kw):
                seen.append((url, dict(kw["headers"])))
                return s.post(url, **kw)

        return Spy()

    monkeypatch.setattr(client, "session", spying_session)
    answer = ask(chat_gateway, "sync", "create", model="azure/gpt-4o", messages=MESSAGES)
    entry = assert_billed(emulator, answer, stream=False)
    assert entry["path"] == "/openai/deployments/gpt-4o/chat/completions"
    assert entry["query"] == "api-version=2024-10-21" and entry["signature"] == "api_key"
    (url, headers) = seen[-1]
    assert url.endswith("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")
    assert headers["api-key"] == emulator.credentials.api_keys[0]
    assert "authorization" not in {k.lower() for k in headers}  # no OCI signature, no bearer


def test_the_stored_key_is_encrypted_at_rest(chat_gateway):
    key = chat_gateway.emulator.credentials.api_keys[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM models_registry_deployment WHERE name = %s", ["x-azure-gpt-4o"])
        (stored,) = cursor.fetchone()
    assert stored and key not in stored and key.encode().hex() not in stored


def test_namespace_wildcard_passes_unknown_names_to_its_provider(chat_gateway, upstream_bodies):
    emulator = chat_gateway.emulator
    _provider(emulator, "lab-vllm", ["lab/*"])
    _provider(emulator, "lab-special", ["lab/special"], model_id="gpt-4o")
    client = chat_gateway.openai()

    answer = ask(chat_gateway, "sync", "create", model="lab/gpt-4o-mini", messages=MESSAGES)
    assert answer.model == "lab/gpt-4o-mini"
    assert upstream_bodies[answer.request_id][0]["body"]["model"] == "gpt-4o-mini"
    assert ledger_entry(emulator, answer.request_id)["model"] == "gpt-4o-mini"
    # Names may contain '/': the provider gets everything after the namespace.
    answer = ask(chat_gateway, "sync", "stream", model="lab/meta-llama/Llama-3.3-70B-Instruct", messages=MESSAGES)
    assert upstream_bodies[answer.request_id][0]["body"]["model"] == "meta-llama/Llama-3.3-70B-Instruct"
    assert_billed(emulator, answer, stream=True)
    # An exact public name wins over the wildcard.
    answer = ask(chat_gateway, "sync", "create", model="lab/special", messages=MESSAGES)
    assert upstream_bodies[answer.request_id][0]["body"]["model"] == "gpt-4o"
    # A name the provider does not serve is the client's unknown model, not a gateway failure.
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="lab/no-such-model", messages=MESSAGES)
    assert caught.value.body["code"] == "model_not_found" and caught.value.body["param"] == "model"
    # The wildcard itself is not a model a client can list.
    listed = {m.id for m in client.models.list()}
    assert "lab/special" in listed and "lab/*" not in listed
    usage = usage_record(answer.request_id)
    assert usage.public_model == "lab/special"


def test_default_namespace_is_implied(chat_gateway):
    answer = ask(chat_gateway, "sync", "create", model="default/meta.llama-3.3-70b-instruct", messages=MESSAGES)
    assert answer.content == answer_to(PLAIN)
    assert ledger_entry(chat_gateway.emulator, answer.request_id)["model"] == "meta.llama-3.3-70b-instruct"


def test_key_allowlists_apply_to_namespaces(chat_gateway):
    from usage.keys import api_key_create

    _provider(chat_gateway.emulator, "lab-vllm", ["lab/*"])
    _key, one = api_key_create(name="one-model", allowed_models=["lab/gpt-4o"])
    _key, namespace = api_key_create(name="whole-namespace", allowed_models=["lab/*"])
    narrow, wide = chat_gateway.openai(api_key=one), chat_gateway.openai(api_key=namespace)
    assert narrow.chat.completions.create(model="lab/gpt-4o", messages=MESSAGES).choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as caught:
        narrow.chat.completions.create(model="lab/gpt-4o-mini", messages=MESSAGES)
    assert caught.value.body["code"] == "model_not_allowed"
    assert wide.chat.completions.create(model="lab/gpt-4o-mini", messages=MESSAGES).choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError):
        wide.chat.completions.create(model="meta.llama-3.3-70b-instruct", messages=MESSAGES)


def test_provider_embeddings(chat_gateway):
    emulator = chat_gateway.emulator
    _provider(emulator, "lab-embed", ["lab/embed"], model_id="text-embedding-3-small", supports_chat=False,
              supports_embeddings=True)
    raw = chat_gateway.openai().embeddings.with_raw_response.create(model="lab/embed", input=["one two", "three"])
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1] and len(result.data[0].embedding) == 256
    assert result.model == "lab/embed"
    rid = raw.headers["x-request-id"]
    entry = ledger_entry(emulator, rid)
    assert entry["path"] == "/provider/v1/embeddings" and entry["model"] == "text-embedding-3-small"
    assert result.usage.prompt_tokens == entry["usage"]["promptTokens"] > 0
    assert usage_record(rid).prompt_tokens == result.usage.prompt_tokens


@pytest.mark.provokes_rejection
def test_a_wrong_provider_key_is_the_gateways_fault(chat_gateway, monkeypatch):
    monkeypatch.setenv(chat_cases.PROVIDER_KEY_ENV, "not-the-key")
    from models_registry import bus

    bus.bump("catalog")  # the key is read when the catalog is built
    with pytest.raises(openai.APIStatusError) as caught:
        chat_gateway.openai().chat.completions.create(model="vllm/gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 502 and caught.value.body["code"] == "upstream_auth_error"
    assert "x-vllm-gpt-4o" in caught.value.body["message"] and "not-the-key" not in caught.value.body["message"]


def test_an_unset_key_variable_is_named(chat_gateway, monkeypatch):
    monkeypatch.delenv(chat_cases.PROVIDER_KEY_ENV)
    from models_registry import bus

    bus.bump("catalog")
    with pytest.raises(openai.APIStatusError) as caught:
        chat_gateway.openai().chat.completions.create(model="vllm/gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 502 and chat_cases.PROVIDER_KEY_ENV in caught.value.body["message"]
    assert not ledger_calls_to(chat_gateway.emulator, "/provider/v1/chat/completions")


def test_a_changed_encryption_key_fails_clearly(chat_gateway, settings):
    from models_registry import bus

    settings.GATEWAY_ENCRYPTION_KEY = "another-passphrase"
    bus.bump("catalog")
    with pytest.raises(openai.APIStatusError) as caught:
        chat_gateway.openai().chat.completions.create(model="azure/gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 502 and "GATEWAY_ENCRYPTION_KEY" in caught.value.body["message"]
    # Rotation: the new key first, the old one after a comma; stored keys still decrypt.
    settings.GATEWAY_ENCRYPTION_KEY = "another-passphrase," + chat_cases.TEST_ENCRYPTION_KEY
    bus.bump("catalog")
    answer = ask(chat_gateway, "sync", "create", model="azure/gpt-4o", messages=MESSAGES)
    assert answer.content == answer_to(PLAIN)


def ledger_calls_to(emulator, path: str) -> list[dict]:
    return [e for e in emulator.ledger(0, wait=False) if e["path"] == path]


def test_traced_provider_calls_never_log_the_key(chat_gateway, settings, caplog):
    import logging

    settings.GATEWAY_TRACE_UPSTREAM = True
    key = chat_gateway.emulator.credentials.api_keys[0]
    with caplog.at_level(logging.INFO):
        for model in ("vllm/gpt-4o", "azure/gpt-4o"):
            list(chat_gateway.openai().chat.completions.create(model=model, messages=MESSAGES, stream=True))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/provider/v1/chat/completions" in text and "/openai/deployments/gpt-4o" in text
    assert key not in text and "[REDACTED]" in text


def test_region_restricted_keys_reach_only_providers_in_their_regions(chat_gateway):
    from usage.keys import api_key_create

    _provider(chat_gateway.emulator, "lab-nowhere", ["lab/any"], model_id="gpt-4o")
    _provider(chat_gateway.emulator, "lab-eu", ["lab/eu"], model_id="gpt-4o", region="eu-onprem")
    key, secret = api_key_create(name="eu-only")
    key.allowed_regions = ["eu-onprem"]
    key.save()
    client = chat_gateway.openai(api_key=secret)
    assert client.chat.completions.create(model="lab/eu", messages=MESSAGES).choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="lab/any", messages=MESSAGES)
    assert caught.value.body["code"] == "region_not_allowed"


def test_probe_deployments_reaches_providers(chat_gateway):
    """`manage.py probe_deployments` sends its tiny request to providers with their own keys and URLs."""
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("probe_deployments", "--deployment", "x-vllm-gpt-4o", "--deployment", "x-azure-gpt-4o", "--json",
                 stdout=out)
    import json

    results = {r["deployment"]: r for r in json.loads(out.getvalue())}
    assert results["x-vllm-gpt-4o"]["ok"] and results["x-azure-gpt-4o"]["ok"], results
    paths = {e["path"] for e in chat_gateway.emulator.ledger(0)}
    assert {"/provider/v1/chat/completions", "/openai/deployments/gpt-4o/chat/completions"} <= paths
