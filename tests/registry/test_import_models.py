"""import_models / export_models: upsert by public name, idempotent, prune disables."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from models_registry.models import Deployment, PublicModel

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

SEED_YAML = """
- region: us-chicago-1
  compartment_id: ocid1.compartment.oc1..aaaa
  models:
    ondemand:
      - name: cohere.command-r-plus
        model_id: cohere.command-r-plus-08-2024
        description: "Chat"
      - name: meta.llama-3.3-70b-instruct
        model_id: meta.llama-3.3-70b-instruct
        description: "Llama"
    embedding:
      - name : cohere.embed-english-v3.0
        model_id : cohere.embed-english-v3.0
        description: "Embed"
    dedicated:
      - name: my-dedicated-model-name
        endpoint: https://ocid1.generativeaiendpoint.oc1.us-chicago-1.xyz
        description: "dedicated"
- region: us-ashburn-1
  compartment_id: ocid1.compartment.oc1..bbbb
  models:
    datascience:
      - name: ODSC-Mistral-7B-Instruct
        endpoint: https://modeldeployment.us-ashburn-1.oci.customer-oci.com/ocid1.datasciencemodeldeployment.oc1.iad.x/predict
        description: "Mistral"
"""


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def seed_file(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(SEED_YAML)
    return path


def test_import_creates_then_reports_unchanged(seed_file):
    assert run("import_models", str(seed_file)) == "created 5, updated 0, unchanged 0"
    assert run("import_models", str(seed_file)) == "created 0, updated 0, unchanged 5"
    assert PublicModel.objects.count() == 5
    assert Deployment.objects.count() == 5


def test_import_infers_formats_and_kinds(seed_file):
    run("import_models", str(seed_file))
    cohere = Deployment.objects.get(routes__public_model__name="cohere.command-r-plus")
    assert (cohere.api_format, cohere.max_output_tokens, cohere.region) == ("COHERE", 4000, "us-chicago-1")
    dedicated = Deployment.objects.get(routes__public_model__name="my-dedicated-model-name")
    assert dedicated.endpoint_id == "ocid1.generativeaiendpoint.oc1.us-chicago-1.xyz"
    ds = Deployment.objects.get(routes__public_model__name="ODSC-Mistral-7B-Instruct")
    assert (ds.kind, ds.api_format) == ("datascience", "OPENAI")
    embed = Deployment.objects.get(routes__public_model__name="cohere.embed-english-v3.0")
    assert embed.supports_embeddings and not embed.supports_chat


def test_changed_entry_is_updated_not_duplicated(seed_file):
    run("import_models", str(seed_file))
    seed_file.write_text(SEED_YAML.replace('description: "Llama"', 'description: "Llama 3.3"'))
    assert run("import_models", str(seed_file)) == "created 0, updated 1, unchanged 4"
    assert PublicModel.objects.get(name="meta.llama-3.3-70b-instruct").description == "Llama 3.3"
    assert Deployment.objects.count() == 5


def test_prune_disables_and_never_deletes(seed_file):
    run("import_models", str(seed_file))
    seed_file.write_text(SEED_YAML.split("- region: us-ashburn-1")[0])
    assert run("import_models", "--prune", str(seed_file)) == "created 0, updated 0, unchanged 4, disabled 1"
    pm = PublicModel.objects.get(name="ODSC-Mistral-7B-Instruct")
    assert pm.enabled is False


def test_export_then_import_changes_nothing(seed_file, tmp_path):
    run("import_models", str(seed_file))
    exported = tmp_path / "exported.yaml"
    call_command("export_models", "--output", str(exported), stderr=StringIO())
    assert run("import_models", str(exported), "--source", "models.yaml") == "created 0, updated 0, unchanged 5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just: a mapping", "must be a list"),
        ("- region: r\n  models: {weird: []}", "unknown kind 'weird'"),
        ("- region: r\n  models: {ondemand: [{description: x}]}", "needs a 'name'"),
        ("- region: r\n  models: {dedicated: [{name: d, endpoint: nope}]}", "dedicated endpoint OCID"),
        ("- [", "not valid YAML"),
    ],
)
def test_bad_files_get_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CommandError, match=message):
        run("import_models", str(path))
