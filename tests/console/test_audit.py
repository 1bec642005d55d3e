"""The audit log: every write path leaves an entry with who, what and a masked field-level diff; CSV export."""

from __future__ import annotations

import csv
import io
from io import StringIO
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse

from audit.context import Actor, acting_as, current_actor
from audit.models import AuditEntry
from audit.services import MASK, is_secret_name, record_change
from models_registry.models import Deployment, PublicModel
from usage.keys import api_key_create, api_key_rotate
from usage.models import ApiKey, Team

pytestmark = [pytest.mark.django_db]


def entries(**filters):
    return list(AuditEntry.objects.filter(**filters).order_by("id"))


@pytest.mark.smoke
def test_api_write_is_attributed_to_the_token_user(api_client):
    response = api_client.post("/manage/api/teams/", {"name": "research", "metadata": {"owner": "ana"}},
                               format="json")
    assert response.status_code == 201
    [entry] = entries(object_type="usage.team")
    assert (entry.actor, entry.channel, entry.action) == ("api:ops", "api", "create")
    assert entry.user.username == "ops"
    assert entry.changes["name"] == [None, "research"]
    assert entry.changes["metadata"] == [None, {"owner": "ana"}]


@pytest.mark.smoke
def test_command_writes_are_attributed_to_the_command(catalogue):
    out = StringIO()
    call_command("create_api_key", "from-cli", stdout=out, stderr=StringIO())
    secret = out.getvalue().strip().splitlines()[-1]
    [entry] = entries(object_type="usage.apikey")
    assert (entry.actor, entry.channel) == ("command:create_api_key", "command")
    assert entry.changes["lookup_hash"] == [None, MASK]
    assert secret not in str(entry.changes)


def test_import_prune_audits_the_bulk_update(catalogue, tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(ONLY_LLAMA)
    call_command("import_models", str(path), "--source", "console-tests", "--prune", stdout=StringIO())
    [entry] = entries(object_type="models_registry.publicmodel", action="update")
    assert entry.object_repr == "embed-v4"
    assert entry.changes == {"enabled": [True, False]}
    assert entry.actor == "command:import_models" and "pruned" in entry.note
    assert not PublicModel.objects.get(name="embed-v4").enabled


ONLY_LLAMA = """
- region: us-chicago-1
  compartment_id: ocid1.compartment.oc1..console
  models:
    ondemand:
      - name: llama-3.3
        model_id: meta.llama-3.3-70b-instruct
        description: Llama
"""


def test_service_calls_outside_any_channel_are_system():
    key, _ = api_key_create(name="startup")
    assert entries(object_type="usage.apikey")[0].actor == "system"
    with acting_as(Actor("command", "serve")):
        api_key_rotate(key=key)
    assert entries(object_type="usage.apikey")[-1].actor == "command:serve"
    assert current_actor().label == "system"


def test_update_diff_lists_only_changed_fields_and_delete_keeps_old_values(catalogue):
    deployment = Deployment.objects.get(model_id="meta.llama-3.3-70b-instruct")
    deployment.default_max_tokens = 1000
    deployment.param_defaults = {"temperature": 0.2, "api_token": "abc"}
    deployment.save()
    entry = entries(object_type="models_registry.deployment", action="update")[-1]
    assert entry.changes["default_max_tokens"] == [4096, 1000]  # "tokens" is not a secret word
    assert entry.changes["param_defaults"] == [{}, {"temperature": 0.2, "api_token": MASK}]
    assert set(entry.changes) == {"default_max_tokens", "param_defaults"}
    pm = PublicModel.objects.get(name="llama-3.3")
    pm.delete()
    deleted = entries(action="delete")
    assert {e.object_type for e in deleted} == {"models_registry.publicmodel", "models_registry.route"}
    pm_entry = next(e for e in deleted if e.object_type == "models_registry.publicmodel")
    assert pm_entry.changes["name"] == ["llama-3.3", None]


def test_unchanged_save_leaves_no_entry():
    team = Team.objects.create(name="t")
    team.save()
    assert len(entries(object_type="usage.team")) == 1


def test_rolled_back_change_leaves_no_entry():
    with pytest.raises(RuntimeError), transaction.atomic():
        Team.objects.create(name="ghost")
        raise RuntimeError("abort")
    assert not AuditEntry.objects.exists()


def test_secret_masking_rules():
    for name in ("lookup_hash", "previous_lookup_hash", "password", "client_secret", "auth_token", "api_key",
                 "private_key", "key_material", "pass_phrase"):
        assert is_secret_name(name), name
    for name in ("name", "prefix", "default_max_tokens", "max_tokens_field", "total_tokens", "key", "monkey"):
        assert not is_secret_name(name), name
    entry = record_change(action="update", model=Team, object_id=1, object_repr="t", changes={
        "metadata": [{}, {"password": "hunter2", "note": "sk-" + "a" * 30, "nested": {"secret": "s"}}],
    })
    assert entry.changes["metadata"][1] == {"password": MASK, "note": MASK, "nested": {"secret": MASK}}


# --- viewing and exporting ------------------------------------------------------------------------


@pytest.fixture
def some_entries(catalogue):
    Team.objects.create(name="=HYPERLINK(\"http://evil\")")
    api_key_create(name="k")


def _rows(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.mark.smoke
def test_csv_export_view_respects_filters(staff_client, some_entries):
    url = reverse("admin:audit_auditentry_export")
    response = staff_client.get(url + "?object_type=usage.team")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = _rows(response)
    assert len(rows) == 1 and rows[0]["object_type"] == "usage.team"
    assert rows[0]["object_repr"].startswith("'=")  # no formula injection in spreadsheets
    everything = _rows(staff_client.get(url))
    assert len(everything) == AuditEntry.objects.count()
    assert all(MASK in r["changes"] for r in everything if r["object_type"] == "usage.apikey")
    assert "Export as CSV" in staff_client.get(reverse("admin:audit_auditentry_changelist")).content.decode()


def test_csv_export_action(staff_client, some_entries):
    pks = list(AuditEntry.objects.filter(object_type="usage.apikey").values_list("pk", flat=True))
    response = staff_client.post(reverse("admin:audit_auditentry_changelist"),
                                 {"action": "export_csv", "_selected_action": pks, "index": "0"})
    rows = _rows(response)
    assert [r["object_type"] for r in rows] == ["usage.apikey"] * len(pks)


def test_audit_log_is_read_only_and_filterable(staff_client, plain_client, some_entries):
    entry = AuditEntry.objects.first()
    assert staff_client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    assert staff_client.post(reverse("admin:audit_auditentry_delete", args=[entry.pk]), {"post": "yes"}
                             ).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
    url = reverse("admin:audit_auditentry_changelist")
    for query in ("?channel__exact=system", "?action__exact=create", "?object_type=usage.apikey", "?q=k",
                  "?" + urlencode({"created_at__gte": "2000-01-01 00:00:00+00:00"})):
        assert staff_client.get(url + query).status_code == 200, query
    page = staff_client.get(reverse("admin:audit_auditentry_change", args=[entry.pk])).content.decode()
    assert "before" in page and "after" in page
    export = plain_client.get(reverse("admin:audit_auditentry_export"))
    assert export.status_code == 302


def test_key_history_link_on_key_page(staff_client):
    key, _ = api_key_create(name="k")
    page = staff_client.get(reverse("admin:usage_apikey_change", args=[key.pk])).content.decode()
    assert f"object_type=usage.apikey&amp;object_id={key.pk}" in page
    listing = staff_client.get(reverse("admin:audit_auditentry_changelist") +
                               f"?object_type=usage.apikey&object_id={key.pk}")
    assert listing.status_code == 200 and ApiKey.objects.get().name in listing.content.decode()
