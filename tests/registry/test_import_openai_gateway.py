"""import_models --format openai-gateway: the generic OpenAI gateway's CONFIG JSON of namespaced providers."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from models_registry.catalog import load_catalog
from models_registry.models import Deployment, PublicModel

pytestmark = [pytest.mark.django_db]

CONFIG = {
    "namespaces": {
        "azure": {"base_url": "https://contoso.openai.azure.com", "api_key": "${AZURE_OPENAI_API_KEY}",
                  "api_version": "2024-10-21",
                  "models": ["gpt-4o", {"name": "gpt-4o-mini", "deployment": "mini-prod", "vision": True}]},
        "vllm": {"base_url": "https://vllm.intranet/v1/", "api_key": "os.environ/VLLM_KEY", "models": "*"},
        "default": {"base_url": "https://gw.intranet/v1", "api_key": "env:GW_KEY", "models": ["qwen3"]},
    }
}


def _import(tmp_path, config, *args):
    path = tmp_path / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    out = StringIO()
    call_command("import_models", "--format", "openai-gateway", str(path), *args, stdout=out)
    return out.getvalue()


def test_namespaces_become_provider_deployments(tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-secret-value")
    assert _import(tmp_path, CONFIG).strip() == "created 4, updated 0, unchanged 0"
    assert set(PublicModel.objects.values_list("name", flat=True)) == {
        "azure/gpt-4o", "azure/gpt-4o-mini", "vllm/*", "qwen3"}
    mini = Deployment.objects.get(routes__public_model__name="azure/gpt-4o-mini")
    assert (mini.kind, mini.api_format, mini.model_id, mini.azure_api_version, mini.api_key_env,
            mini.supports_vision) == ("openai_compatible", "OPENAI", "mini-prod", "2024-10-21",
                                      "AZURE_OPENAI_API_KEY", True)
    assert mini.api_key_encrypted == ""  # a reference, never the key
    vllm = Deployment.objects.get(routes__public_model__name="vllm/*")
    assert (vllm.base_url, vllm.model_id, vllm.api_key_env) == ("https://vllm.intranet/v1", "", "VLLM_KEY")
    # The catalog resolves them, reading the key from the environment.
    catalog = load_catalog()
    entry = catalog.lookup("azure/gpt-4o-mini")
    assert entry.deployments[0].api_key == "az-secret-value" and "az-secret-value" not in repr(entry)
    wildcard = catalog.lookup("vllm/Qwen/Qwen3-32B")
    assert wildcard.name == "vllm/Qwen/Qwen3-32B" and wildcard.deployments[0].model_id == "Qwen/Qwen3-32B"
    assert catalog.lookup("default/qwen3").deployments[0].model_id == "qwen3"
    assert catalog.lookup("vllm") is None and catalog.lookup("other/x") is None


def test_reimport_is_unchanged_and_export_round_trips(tmp_path):
    _import(tmp_path, CONFIG)
    assert _import(tmp_path, CONFIG).strip() == "created 0, updated 0, unchanged 4"
    out = StringIO()
    call_command("export_models", "--format", "openai-gateway", stdout=out)
    exported = json.loads(out.getvalue())
    assert exported["namespaces"]["azure"]["api_key"] == "env:AZURE_OPENAI_API_KEY"
    assert _import(tmp_path, exported).strip() == "created 0, updated 0, unchanged 4"
    # models.yaml export leaves the providers out instead of writing entries it could not re-import.
    yaml_out = StringIO()
    call_command("export_models", stdout=yaml_out)
    assert "azure" not in yaml_out.getvalue()


def test_an_env_file_line_is_accepted(tmp_path):
    line = "CONFIG='" + json.dumps({"lab": {"base_url": "https://lab.intranet/v1", "models": ["m1"]}}) + "'"
    assert _import(tmp_path, line).strip() == "created 1, updated 0, unchanged 0"
    assert Deployment.objects.get().api_key_env == ""


@pytest.mark.parametrize(("config", "message"), [
    ({"azure": {"base_url": "https://a.openai.azure.com", "api_key": "sk-inline-secret", "models": ["gpt-4o"]}},
     "given in clear"),
    ({"lab": {"models": ["m"]}}, "'base_url' is required"),
    ({"lab": {"base_url": "http://lab.intranet/v1", "models": ["m"]}}, "must use https"),
    ({"lab": {"base_url": "https://169.254.169.254/v1", "models": ["m"]}}, "link-local"),
    ({"az": {"base_url": "https://a.openai.azure.com", "api_version": "2024-10-21", "models": "*"}},
     "cannot be a wildcard"),
    ({"a/b": {"base_url": "https://x/v1", "models": ["m"]}}, "without '/'"),
    ("not json", "not valid JSON"),
])
def test_bad_configs_say_why_and_store_nothing(tmp_path, config, message):
    with pytest.raises(CommandError, match=message):
        _import(tmp_path, config)
    assert not Deployment.objects.exists()


def test_inline_keys_never_reach_the_database_or_the_error(tmp_path):
    config = {"azure": {"base_url": "https://a.openai.azure.com", "api_key": "sk-inline-secret", "models": ["x"]}}
    with pytest.raises(CommandError) as caught:
        _import(tmp_path, config)
    assert "sk-inline-secret" not in str(caught.value)
