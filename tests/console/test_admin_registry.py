"""The admin for the catalogue, teams, usage records and the audit log: pages, validation, bulk actions, banner."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from models_registry.models import CacheVersion, CredentialProfile, Deployment, PublicModel, Route
from usage.keys import api_key_create
from usage.models import Team, UsageRecord

from .conftest import admin_form

pytestmark = [pytest.mark.django_db]

ADMIN_MODELS = [
    ("models_registry", "credentialprofile"),
    ("models_registry", "deployment"),
    ("models_registry", "publicmodel"),
    ("models_registry", "route"),
    ("usage", "apikey"),
    ("usage", "team"),
    ("usage", "usagerecord"),
    ("audit", "auditentry"),
]
ADDABLE = {"credentialprofile", "deployment", "publicmodel", "route", "apikey", "team"}


@pytest.fixture
def one_of_each(catalogue):
    CredentialProfile.objects.create(name="chicago", auth_type="INSTANCE_PRINCIPAL")
    team = Team.objects.create(name="research")
    key, _secret = api_key_create(name="k1", team=team)
    UsageRecord.objects.create(request_id="req-1", key=key, team=team, endpoint="chat.completions",
                               public_model="llama-3.3", status=200, total_tokens=12)
    return {
        "credentialprofile": CredentialProfile.objects.get(name="chicago"),
        "deployment": Deployment.objects.first(),
        "publicmodel": PublicModel.objects.first(),
        "route": Route.objects.first(),
        "apikey": key,
        "team": team,
        "usagerecord": UsageRecord.objects.get(),
        "auditentry": AuditEntry.objects.first(),
    }


def catalog_version() -> int:
    row = CacheVersion.objects.filter(namespace="catalog").first()
    return row.version if row else 0


@pytest.mark.smoke
@pytest.mark.parametrize(("app", "model"), ADMIN_MODELS)
def test_every_page_renders_for_staff(staff_client, one_of_each, app, model):
    assert staff_client.get(reverse(f"admin:{app}_{model}_changelist")).status_code == 200
    obj = one_of_each[model]
    assert staff_client.get(reverse(f"admin:{app}_{model}_change", args=[obj.pk])).status_code == 200
    add = staff_client.get(reverse(f"admin:{app}_{model}_add"))
    assert add.status_code == (200 if model in ADDABLE else 403)


@pytest.mark.parametrize("model", [CredentialProfile, Deployment, PublicModel, Route, Team])
def test_every_editable_field_is_in_the_admin_form(staff_client, model):
    """A field added to a model must not be silently missing from its admin page."""
    opts = model._meta
    data = admin_form(staff_client, reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    editable = {f.name for f in opts.concrete_fields if f.editable and not f.primary_key and not f.auto_created}
    checkboxes = {f.name for f in opts.concrete_fields if f.get_internal_type() == "BooleanField"}
    missing = {name for name in editable - checkboxes if name not in data and f"{name}_0" not in data}
    assert not missing


@pytest.mark.parametrize(("app", "model"), ADMIN_MODELS)
def test_anonymous_and_non_staff_are_sent_to_login(client, plain_client, app, model):
    url = reverse(f"admin:{app}_{model}_changelist")
    for c in (client, plain_client):
        response = c.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_admin_index_lists_every_object_type(staff_client):
    page = staff_client.get(reverse("admin:index")).content.decode()
    for label in ("Credential profiles", "Deployments", "Public models", "Routes", "API keys", "Teams",
                  "Usage records", "Audit entries"):
        assert label in page


def test_deployment_validation_says_how_to_fix(staff_client):
    url = reverse("admin:models_registry_deployment_add")
    response = staff_client.post(url, admin_form(staff_client, url, name="bad", kind="dedicated", region="ORD",
                                                 compartment_id="abc", endpoint_id="xyz"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "use the form us-chicago-1" in page
    assert "ocid1.compartment.oc1.." in page
    assert "Dedicated deployments need the endpoint OCID" in page
    assert not Deployment.objects.filter(name="bad").exists()


def test_credential_profile_validation_names_missing_file_and_profile(staff_client, tmp_path):
    url = reverse("admin:models_registry_credentialprofile_add")

    def form(**fields):
        return admin_form(staff_client, url, name="p1", auth_type="API_KEY", **fields)

    response = staff_client.post(url, form(config_file=str(tmp_path / "none")))
    assert "No OCI config file at" in response.content.decode()
    config = tmp_path / "config"
    config.write_text("[DEFAULT]\nuser=x\n[OTHER]\nuser=y\n")
    response = staff_client.post(url, form(config_file=str(config), config_profile="MISSING"))
    assert "has no [MISSING] profile (it has: DEFAULT, OTHER)" in response.content.decode()
    response = staff_client.post(url, form(config_file=str(config), config_profile="OTHER", is_default="on"))
    assert response.status_code == 302
    assert CredentialProfile.objects.get(name="p1").is_default


def test_only_one_default_credential_profile(staff_client):
    CredentialProfile.objects.create(name="old", auth_type="INSTANCE_PRINCIPAL", is_default=True)
    url = reverse("admin:models_registry_credentialprofile_add")
    staff_client.post(url, admin_form(staff_client, url, name="new", auth_type="INSTANCE_PRINCIPAL", is_default="on"))
    assert list(CredentialProfile.objects.filter(is_default=True).values_list("name", flat=True)) == ["new"]


@pytest.mark.smoke
@pytest.mark.parametrize("model", ["deployment", "publicmodel", "route"])
def test_bulk_disable_and_enable_bump_the_bus_and_audit(staff_client, catalogue, model):
    cls = {"deployment": Deployment, "publicmodel": PublicModel, "route": Route}[model]
    pks = list(cls.objects.values_list("pk", flat=True))
    url = reverse(f"admin:models_registry_{model}_changelist")
    before = catalog_version()
    response = staff_client.post(url, {"action": "disable", "_selected_action": pks, "index": "0"})
    assert response.status_code == 302
    assert not cls.objects.filter(enabled=True).exists()
    assert catalog_version() != before
    entries = AuditEntry.objects.filter(object_type=f"models_registry.{model}", action="update")
    assert entries.count() == len(pks)
    assert all(e.actor == "admin:ops" and e.changes == {"enabled": [True, False]} for e in entries)
    before = catalog_version()
    staff_client.post(url, {"action": "enable", "_selected_action": pks, "index": "0"})
    assert cls.objects.filter(enabled=True).count() == len(pks)
    assert catalog_version() != before


def test_public_model_with_inline_route(staff_client, catalogue):
    deployment = Deployment.objects.get(model_id="meta.llama-3.3-70b-instruct")
    url = reverse("admin:models_registry_publicmodel_add")
    response = staff_client.post(url, admin_form(staff_client, url, name="team/llama", description="alias",
                                                 **{"routes-0-deployment": str(deployment.pk)}))
    assert response.status_code == 302, response.content.decode()[:2000]
    pm = PublicModel.objects.get(name="team/llama")
    assert list(pm.routes.values_list("deployment__name", flat=True)) == [deployment.name]
    assert AuditEntry.objects.filter(object_type="models_registry.route", action="create",
                                     actor="admin:ops").exists()


def test_public_model_name_with_spaces_is_refused_with_a_hint(staff_client):
    url = reverse("admin:models_registry_publicmodel_add")
    response = staff_client.post(url, admin_form(staff_client, url, name="my model"))
    assert "cannot contain spaces" in response.content.decode()


def test_demo_banner_only_in_demo_mode(staff_client, settings):
    settings.GATEWAY_DEMO_ACTIVE = False
    assert 'id="gateway-demo-banner"' not in staff_client.get(reverse("admin:index")).content.decode()
    settings.GATEWAY_DEMO_ACTIVE = True
    page = staff_client.get(reverse("admin:index")).content.decode()
    assert 'id="gateway-demo-banner"' in page and "Demo mode" in page


def test_team_allowlist_validation_suggests_the_right_name(staff_client, catalogue):
    url = reverse("admin:usage_team_add")

    def form(**fields):
        return admin_form(staff_client, url, name="t1", **fields)

    response = staff_client.post(url, form(allowed_models="llama-3.4, embed-v4", metadata="{}"))
    page = response.content.decode()
    assert "Unknown public model name(s)" in page and "did you mean" in page and "llama-3.3" in page
    response = staff_client.post(url, form(allowed_models="llama-3.3, embed-v4", metadata="[1]"))
    assert "Give a JSON object" in response.content.decode()
    response = staff_client.post(url, form(allowed_models="llama-3.3, embed-v4", metadata='{"cc": "1"}',
                                           rpm_limit="60"))
    assert response.status_code == 302
    team = Team.objects.get(name="t1")
    assert team.allowed_models == ["llama-3.3", "embed-v4"] and team.rpm_limit == 60


# --- usage records at scale -------------------------------------------------------------------------


def _records(n: int) -> None:
    now = timezone.now()
    UsageRecord.objects.bulk_create([
        UsageRecord(request_id=f"r{i}", created_at=now, endpoint="chat.completions", public_model="m",
                    status=200 if i % 5 else 500, total_tokens=i)
        for i in range(n)
    ])


@pytest.mark.smoke
def test_usage_changelist_never_counts(staff_client):
    _records(105)
    url = reverse("admin:usage_usagerecord_changelist")
    with CaptureQueriesContext(connection) as queries:
        page = staff_client.get(url)
    assert page.status_code == 200
    sql = " ".join(q["sql"].upper() for q in queries.captured_queries if "USAGE_USAGERECORD" in q["sql"].upper())
    assert "COUNT(" not in sql
    text = page.content.decode()
    assert "older &rsaquo;" in text and "newer" not in text
    second = staff_client.get(url + "?p=2").content.decode()
    assert "&lsaquo; newer" in second and "older &rsaquo;" not in second
    assert second.count('class="field-endpoint"') == 5


def test_usage_filters_and_exact_search(staff_client):
    _records(12)
    url = reverse("admin:usage_usagerecord_changelist")
    for query in ("?status_class=5xx", "?within=24h", "?endpoint=chat.completions", "?usage_source__exact=none",
                  "?streamed__exact=0", "?q=r3"):
        response = staff_client.get(url + query)
        assert response.status_code == 200, query
    assert staff_client.get(url + "?q=r3").content.decode().count('class="field-endpoint"') == 1
    assert staff_client.get(url + "?status_class=5xx").content.decode().count('class="field-endpoint"') == 3
    # "Show all" is off: it would load the whole table.
    assert staff_client.get(url + "?all=").content.decode().count('class="field-endpoint"') <= 100


def test_usage_records_are_read_only(staff_client):
    _records(1)
    record = UsageRecord.objects.get()
    response = staff_client.post(reverse("admin:usage_usagerecord_change", args=[record.pk]), {"status": "404"})
    assert response.status_code == 403
    assert staff_client.get(reverse("admin:usage_usagerecord_delete", args=[record.pk])).status_code == 403


def test_usage_of_one_key_from_the_key_page(staff_client):
    key, _ = api_key_create(name="k")
    other, _ = api_key_create(name="other")
    UsageRecord.objects.create(request_id="mine", key=key, endpoint="embeddings", status=200)
    UsageRecord.objects.create(request_id="theirs", key=other, endpoint="embeddings", status=200)
    page = staff_client.get(reverse("admin:usage_apikey_change", args=[key.pk])).content.decode()
    link = reverse("admin:usage_usagerecord_changelist") + f"?key__id__exact={key.pk}"
    assert link in page
    listing = staff_client.get(link)
    assert listing.status_code == 200
    assert listing.content.decode().count('class="field-endpoint"') == 1
