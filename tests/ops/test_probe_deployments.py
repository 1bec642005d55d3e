"""manage.py probe_deployments against the emulator (api/probes.py)."""

import json
from io import StringIO

import orjson
import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from api import routing
from models_registry.models import Deployment

pytestmark = pytest.mark.django_db(transaction=True)

CHAT, COHERE, COHERE_V2 = "meta.llama-3.3-70b-instruct", "cohere.command-r-08-2024", "cohere.command-a-03-2025"
EMBED, RERANK = "cohere.embed-v4.0", "cohere.rerank-v4.0-fast"


@pytest.fixture
def catalog(oci_settings):
    """Five deployments: chat in the three OCI formats, an embedding model and a rerank model."""
    from models_registry.services import models_import

    models = {"ondemand": [{"name": m, "model_id": m} for m in (CHAT, COHERE, COHERE_V2, RERANK)],
              "embedding": [{"name": EMBED, "model_id": EMBED}]}
    models_import(text=yaml.safe_dump([{"region": "us-chicago-1", "compartment_id": oci_settings.compartment_id,
                                        "models": models}]), source="tests")
    routing.reset_state()
    yield {d.model_id: d.name for d in Deployment.objects.all()}
    routing.reset_state()


def run(*args) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("probe_deployments", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def upstream_calls(emulator) -> dict[str, dict]:
    """The emulator's ledger entries by model id, with the body each call sent."""
    return {e["model"]: e for e in emulator.ledger(0)}


def test_every_deployment_answers_its_tiny_request(catalog, oci_settings, monkeypatch):
    from usage import limits
    from usage.models import UsageRecord
    from usage.recorder import recorder

    billed = []
    monkeypatch.setattr(recorder, "record", lambda event: billed.append(event))
    monkeypatch.setattr(recorder, "record_durable", lambda event: billed.append(event))
    monkeypatch.setattr(limits, "reserve", lambda *a, **k: billed.append(a))
    out, error = run()
    assert error is None, out
    lines = out.strip().splitlines()
    assert len(lines) == 6 and lines[-1] == "all 5 probes ok"
    by_name = {line.split()[0]: line.split() for line in lines[:-1]}
    assert by_name[catalog[CHAT]][1:5] == ["ondemand", "us-chicago-1", "chat", "ok"]
    assert by_name[catalog[EMBED]][3:5] == ["embeddings", "ok"]
    assert by_name[catalog[RERANK]][3:5] == ["rerank", "ok"]
    calls = upstream_calls(oci_settings)
    assert {m: calls[m]["path"].rsplit("/", 1)[1] for m in catalog} == {
        CHAT: "chat", COHERE: "chat", COHERE_V2: "chat", EMBED: "embedText", RERANK: "rerankText"}
    assert all(calls[m]["status"] == 200 for m in catalog)
    # Probes act for no key: nothing is recorded or billed, and the breakers heard nothing.
    sent = [e["opcRequestId"] for e in oci_settings.ledger(0)]
    assert len(sent) == 5
    assert not UsageRecord.objects.filter(request_id__in=sent).exists()
    assert not UsageRecord.objects.filter(upstream_request_id__in=sent).exists()
    assert billed == []
    assert not routing._states


def test_the_chat_probe_is_one_ping_with_one_output_token(catalog, oci_settings, monkeypatch):
    from api.upstream import client

    sent = []
    original = client.post_signed

    async def spy(deployment, url, body, **kwargs):
        sent.append(orjson.loads(body))
        return await original(deployment, url, body, **kwargs)

    monkeypatch.setattr(client, "post_signed", spy)
    _out, error = run("--deployment", catalog[CHAT])
    assert error is None
    (body,) = sent
    assert body["chatRequest"] == {"apiFormat": "GENERIC", "maxTokens": 1,
                                   "messages": [{"role": "USER", "content": [{"type": "TEXT", "text": "ping"}]}]}
    assert body["servingMode"] == {"servingType": "ON_DEMAND", "modelId": CHAT}


def test_a_failing_deployment_is_reported_and_the_command_fails(catalog, oci_settings):
    oci_settings.set_faults(status=503, model=COHERE)
    out, error = run()
    assert error is not None and error.returncode == 1
    assert str(error).startswith(f"1 of 5 probes failed: {catalog[COHERE]}")
    line = next(line for line in out.splitlines() if line.startswith(catalog[COHERE] + " "))
    assert " error 503 " in line and "ms" in line
    assert sum(" ok " in line for line in out.splitlines()) == 4


def test_json_output_and_one_named_deployment(catalog, oci_settings):
    oci_settings.set_faults(status=429, model=CHAT)
    out, error = run("--json", "--deployment", catalog[CHAT], "--deployment", catalog[EMBED])
    assert error is not None
    results = {r["deployment"]: r for r in json.loads(out)}
    assert set(results) == {catalog[CHAT], catalog[EMBED]}
    chat, embed = results[catalog[CHAT]], results[catalog[EMBED]]
    assert (chat["ok"], chat["status"], chat["call"], chat["region"]) == (False, 429, "chat", "us-chicago-1")
    assert chat["error"] and chat["latency_ms"] >= 0 and len(chat["request_id"]) == 32
    assert (embed["ok"], embed["status"], embed["error"]) == (True, 200, "")
    assert len(oci_settings.ledger(0)) == 2


def test_an_unreachable_deployment_and_an_unknown_name(catalog, oci_settings):
    Deployment.objects.filter(name=catalog[RERANK]).update(endpoint_override="http://127.0.0.1:9")
    out, error = run("--deployment", catalog[RERANK])
    assert error is not None
    (line,) = out.splitlines()
    assert " rerank " in line and " error - " in line and "ClientConnectorError" in line
    _out, error = run("--deployment", "no-such-deployment")
    assert error is not None and "no deployment named no-such-deployment" in str(error)
