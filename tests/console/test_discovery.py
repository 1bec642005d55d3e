"""Model discovery against the OCI emulator: filtering, de-duplication, endpoints, fallback, every entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from audit.models import AuditEntry
from models_registry import discovery
from models_registry.discovery import DiscoveryError, discover_models, discovery_apply, select_models
from models_registry.models import CacheVersion, CredentialProfile, Deployment, PublicModel

pytestmark = [pytest.mark.django_db]

REGION = "us-chicago-1"
RETIRED = {"meta.llama-3.1-70b-instruct", "meta.llama-2-70b-chat", "cohere.command"}


@pytest.fixture
def oci(oci_settings, settings):
    """The emulator as OCI (root conftest: management endpoint, config file, region, compartment)."""
    settings.OCI_AUTH_TYPE = "API_KEY"
    return oci_settings


def by_name(result) -> dict:
    return {m.name: m for m in result.models}


@pytest.mark.smoke
def test_discovery_keeps_servable_models_once_each(oci, monkeypatch):
    monkeypatch.setattr(discovery, "PAGE_LIMIT", 7)  # several pages per listing
    result = discover_models(region=REGION, compartment_id=oci.compartment_id)
    assert result.source == "oci" and result.warnings == []
    found = by_name(result)
    names = [m.name for m in result.models]
    assert len(names) == len(set(names))
    assert RETIRED.isdisjoint(found)
    assert found["cohere.command-r-08-2024"].version == "1.7"  # newest of the listed versions
    assert found["cohere.command-r-08-2024"].api_format == "COHERE"
    assert found["cohere.command-a-03-2025"].api_format == "COHEREV2"
    assert found["meta.llama-3.3-70b-instruct"].kind == "ondemand"
    assert found["cohere.embed-v4.0"].kind == "embedding"
    assert found["cohere.rerank-v4.0-fast"].capability == "TEXT_RERANK"
    assert "cohere.rerank.v3-5" not in found  # dedicated-only: retired on demand
    dedicated = {m.name: m for m in result.models if m.kind == "dedicated"}
    assert dedicated["emulator-command-a"].api_format == "COHEREV2"
    assert dedicated["emulator-command-r"].api_format == "COHERE"
    assert dedicated["emulator-rerank-v3-5"].model_id == "cohere.rerank.v3-5"
    assert all(m.endpoint_id.startswith("ocid1.generativeaiendpoint") for m in dedicated.values())
    requests = oci.ledger(since=0)
    assert requests, "the emulator saw no (signature-verified) request"


def test_select_models_filters_state_retirement_and_versions():
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def summary(name, version, state="ACTIVE", retired=None, caps=("CHAT",), created="2025-01-01T00:00:00Z",
                kind="BASE"):
        return SimpleNamespace(display_name=name, version=version, lifecycle_state=state, capabilities=list(caps),
                               time_on_demand_retired=retired, time_created=created, type=kind, vendor="x",
                               id=f"ocid-{name}-{version}")

    models = select_models([
        summary("a", "1.9"), summary("a", "1.10"), summary("b", "1.0", state="DELETED"),
        summary("c", "1.0", retired=now - timedelta(days=1)), summary("d", "1.0", retired=now + timedelta(days=9)),
        summary("e", "1.0", caps=("FINE_TUNE",)), summary("f", "1.0", kind="CUSTOM"),
        summary("g", "1.0", created="2025-01-01T00:00:00Z"), summary("g", "1.0", created="2025-06-01T00:00:00Z"),
    ], now=now)
    found = {m.name: m for m in models}
    assert set(found) == {"a", "d", "g"}
    assert found["a"].version == "1.10"
    assert found["g"].ocid == "ocid-g-1.0" and found["g"].time_created.startswith("2025-06-01")


def test_apply_imports_through_models_import_and_is_idempotent(oci):
    result = discover_models(region=REGION, compartment_id=oci.compartment_id)
    before = CacheVersion.objects.filter(namespace="catalog").values_list("version", flat=True).first()
    summary = discovery_apply(result, names=["meta.llama-3.3-70b-instruct", "emulator-command-a"])
    assert (summary.created, summary.updated) == (2, 0)
    assert CacheVersion.objects.get(namespace="catalog").version != before
    dep = Deployment.objects.get(routes__public_model__name="emulator-command-a")
    assert dep.kind == "dedicated" and dep.api_format == "COHEREV2" and dep.endpoint_id.startswith("ocid1.")
    assert PublicModel.objects.get(name="meta.llama-3.3-70b-instruct").source == f"discovery:{REGION}"
    again = discovery_apply(result, names=["meta.llama-3.3-70b-instruct", "emulator-command-a"])
    assert (again.created, again.unchanged) == (0, 2)
    with pytest.raises(Exception, match="not among the discovered models"):
        discovery_apply(result, names=["no-such-model"])


def test_session_token_profile_is_used(oci):
    profile = CredentialProfile.objects.create(name="session", auth_type="SECURITY_TOKEN",
                                               config_file=oci.config_file, config_profile=oci.session_profile)
    result = discover_models(region=REGION, compartment_id=oci.compartment_id, credential=profile, fallback=False)
    assert result.source == "oci" and result.models


@pytest.mark.provokes_rejection
def test_unknown_key_is_refused_and_the_fallback_says_so(oci, tmp_path, settings):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))
    config = tmp_path / "config"
    config.write_text(
        "[DEFAULT]\nuser=ocid1.user.oc1..aaaa\ntenancy=ocid1.tenancy.oc1..aaaa\n"
        f"fingerprint=11:22:33:44:55:66:77:88:99:00:aa:bb:cc:dd:ee:ff\nkey_file={pem}\nregion={REGION}\n"
    )
    settings.OCI_CONFIG_FILE = str(config)
    with pytest.raises(DiscoveryError, match="OCI answered 401"):
        discover_models(region=REGION, compartment_id=oci.compartment_id, fallback=False)
    result = discover_models(region=REGION, compartment_id=oci.compartment_id)
    assert result.source == "fallback"
    assert "Discovery failed" in result.warnings[0] and "fallback" in result.warnings[0]
    assert "meta.llama-3.3-70b-instruct" in by_name(result)


def test_unreachable_oci_and_bad_profile_fall_back(oci, settings):
    settings.OCI_GENAI_MANAGEMENT_ENDPOINT = "http://127.0.0.1:9"  # nothing listens on the discard port
    result = discover_models(region=REGION, compartment_id="ocid1.compartment.oc1..x")
    assert result.source == "fallback" and "cannot reach OCI" in result.warnings[0]
    profile = CredentialProfile.objects.create(name="p", config_file="/nonexistent/config")
    with pytest.raises(DiscoveryError, match="not found"):
        discover_models(region=REGION, compartment_id="ocid1.compartment.oc1..x", credential=profile,
                        fallback=False)


# --- entry points ----------------------------------------------------------------------------------


@pytest.mark.smoke
def test_command_prints_and_applies(oci):
    out = StringIO()
    call_command("discover_models", "--region", REGION, "--compartment", oci.compartment_id, stdout=out,
                 stderr=StringIO())
    text = out.getvalue()
    assert "meta.llama-3.3-70b-instruct" in text and "emulator-command-a" in text and "(source: oci)" in text
    assert not PublicModel.objects.exists()
    out = StringIO()
    call_command("discover_models", "--apply", "--only", "xai.grok-4", stdout=out, stderr=StringIO())
    assert "imported: created 1, updated 0, unchanged 0" in out.getvalue()
    entries = AuditEntry.objects.filter(actor="command:discover_models")
    assert {e.object_type for e in entries} == {"models_registry.deployment", "models_registry.publicmodel",
                                                "models_registry.route"}


def test_command_errors_are_clear(settings, db):
    settings.OCI_REGION = settings.OCI_COMPARTMENT = ""
    with pytest.raises(CommandError, match="--region and --compartment"):
        call_command("discover_models", stdout=StringIO())
    with pytest.raises(CommandError, match="no credential profile 'nope'"):
        call_command("discover_models", "--credential", "nope", stdout=StringIO())
    settings.OCI_GENAI_MANAGEMENT_ENDPOINT = "http://127.0.0.1:9"
    with pytest.raises(CommandError, match="discovery failed"):
        call_command("discover_models", "--region", REGION, "--compartment", "ocid1.compartment.oc1..x",
                     "--no-fallback", stdout=StringIO(), stderr=StringIO())


def test_admin_discover_page_offers_new_models_and_imports_the_checked_ones(oci, staff_client, catalogue):
    url = reverse("admin:models_registry_publicmodel_discover")
    assert "Discover models from OCI" in staff_client.get(
        reverse("admin:models_registry_publicmodel_changelist")).content.decode()
    form = staff_client.get(url)
    assert form.status_code == 200 and oci.compartment_id in form.content.decode()  # defaults from settings
    page = staff_client.get(url, {"run": "1", "region": REGION, "compartment_id": oci.compartment_id})
    text = page.content.decode()
    assert page.status_code == 200 and "emulator-command-a" in text and "<strong>new</strong>" in text
    bad = staff_client.get(url, {"run": "1", "region": "chicago", "compartment_id": "x"}).content.decode()
    assert "us-chicago-1" in bad and "ocid1.compartment.oc1.." in bad
    response = staff_client.post(url, {"region": REGION, "compartment_id": oci.compartment_id, "credential": "",
                                       "names": ["xai.grok-4", "cohere.embed-v4.0"]}, follow=True)
    assert "Imported from us-chicago-1: created 2" in response.content.decode()
    assert PublicModel.objects.filter(name__in=["xai.grok-4", "cohere.embed-v4.0"]).count() == 2
    assert AuditEntry.objects.filter(actor="admin:ops", object_type="models_registry.publicmodel").count() == 2
    response = staff_client.post(url, {"region": REGION, "compartment_id": oci.compartment_id}, follow=True)
    assert "tick at least one model" in response.content.decode()


def test_admin_discover_needs_staff(client, plain_client):
    url = reverse("admin:models_registry_publicmodel_discover")
    for c in (client, plain_client):
        assert c.get(url).status_code == 302


def test_api_discovery_and_apply(oci, api_client):
    body = {"region": REGION, "compartment_id": oci.compartment_id}
    response = api_client.post("/manage/api/discovery/", body, format="json")
    assert response.status_code == 200
    data = response.json()
    assert data["source"] == "oci" and data["applied"] is None
    assert any(m["name"] == "emulator-command-a" and not m["in_catalogue"] for m in data["models"])
    response = api_client.post("/manage/api/discovery/", {**body, "apply": True, "names": ["xai.grok-4"]},
                               format="json")
    assert response.json()["applied"] == {"created": 1, "updated": 0, "unchanged": 0, "disabled": 0}
    assert next(m for m in response.json()["models"] if m["name"] == "xai.grok-4")["in_catalogue"]
    assert AuditEntry.objects.filter(actor="api:ops", object_type="models_registry.publicmodel").exists()
    response = api_client.post("/manage/api/discovery/", {**body, "apply": True, "names": ["nope"]}, format="json")
    assert response.status_code == 400 and "not among the discovered models" in response.json()["detail"]
    assert api_client.post("/manage/api/discovery/", {"region": "x"}, format="json").status_code == 400
