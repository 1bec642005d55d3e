"""OpenAI-compatible deployments in the admin: the provider key is write-only and encrypted at rest."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from models_registry import provider_keys
from models_registry.models import Deployment

from .conftest import admin_form

pytestmark = [pytest.mark.django_db]

SECRET = "sk-provider-0123456789abcdefghijklmnop"


@pytest.fixture
def encryption(settings):
    settings.GATEWAY_ENCRYPTION_KEY = "admin-test-passphrase"
    settings.ALLOW_HTTP_UPSTREAMS = False


def _add(staff_client, **fields):
    url = reverse("admin:models_registry_deployment_add")
    values = {"name": "azure-gpt4o", "kind": "openai_compatible", "api_format": "OPENAI", "model_id": "gpt-4o",
              "base_url": "https://contoso.openai.azure.com", "azure_api_version": "2024-10-21", "region": "",
              "compartment_id": "", **fields}
    return staff_client.post(url, admin_form(staff_client, url, **values))


def test_the_key_is_stored_encrypted_and_never_shown(staff_client, encryption):
    response = _add(staff_client, api_key=SECRET)
    assert response.status_code == 302, response.content.decode()[:2000]
    deployment = Deployment.objects.get(name="azure-gpt4o")
    assert SECRET not in deployment.api_key_encrypted
    assert provider_keys.decrypt(deployment.api_key_encrypted) == SECRET
    page = staff_client.get(reverse("admin:models_registry_deployment_change", args=[deployment.pk]))
    text = page.content.decode()
    assert SECRET not in text and deployment.api_key_encrypted not in text and "A key is stored." in text
    assert all(SECRET not in str(entry.changes) for entry in AuditEntry.objects.all())


def test_blank_keeps_the_key_and_clear_removes_it(staff_client, encryption):
    _add(staff_client, api_key=SECRET)
    deployment = Deployment.objects.get(name="azure-gpt4o")
    url = reverse("admin:models_registry_deployment_change", args=[deployment.pk])
    assert staff_client.post(url, admin_form(staff_client, url, description="renamed")).status_code == 302
    deployment.refresh_from_db()
    assert deployment.description == "renamed" and provider_keys.decrypt(deployment.api_key_encrypted) == SECRET
    assert staff_client.post(url, admin_form(staff_client, url, clear_api_key="on")).status_code == 302
    deployment.refresh_from_db()
    assert deployment.api_key_encrypted == ""


def test_without_an_encryption_key_the_form_says_so(staff_client, settings):
    settings.GATEWAY_ENCRYPTION_KEY = ""
    response = _add(staff_client, api_key=SECRET)
    assert response.status_code == 200 and "GATEWAY_ENCRYPTION_KEY is not set" in response.content.decode()
    assert not Deployment.objects.filter(name="azure-gpt4o").exists()


@pytest.mark.parametrize(("fields", "message"), [
    ({"base_url": ""}, "need the provider&#x27;s base URL"),
    ({"base_url": "http://vllm.intranet/v1"}, "Upstream URLs must use https"),
    ({"base_url": "https://169.254.169.254/v1"}, "link-local"),
    ({"api_format": "GENERIC"}, "speak the OpenAI format"),
    ({"model_id": ""}, "Azure OpenAI needs the deployment name"),
    ({"api_key_env": "not a name"}, "name of an environment variable"),
])
def test_provider_validation(staff_client, encryption, fields, message):
    response = _add(staff_client, **fields)
    assert response.status_code == 200 and message in response.content.decode()


@pytest.mark.parametrize(("name", "ok"), [("azure/*", True), ("team/llama", True), ("a/b/*", False),
                                          ("*", False), ("azure/gpt*", False), ("default/llama", False)])
def test_public_model_names_and_wildcards(staff_client, name, ok):
    url = reverse("admin:models_registry_publicmodel_add")
    data = admin_form(staff_client, url, name=name)
    data = {k: v for k, v in data.items() if not k.startswith("routes-")}
    data.update({"routes-TOTAL_FORMS": "0", "routes-INITIAL_FORMS": "0"})
    response = staff_client.post(url, data)
    assert (response.status_code == 302) is ok, response.content.decode()[:3000]
