"""The management REST API: staff-only, secrets once, JSON errors, usage rollups, a valid schema, no 500s."""

from __future__ import annotations

from datetime import timedelta

import openapi_spec_validator
import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from audit.models import AuditEntry
from models_registry.models import CredentialProfile, PublicModel, Route
from usage.keys import api_key_create, lookup_hash
from usage.models import ApiKey, Team, UsageRecord

pytestmark = [pytest.mark.django_db]

API = "/manage/api"


# --- access ----------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_anonymous_and_non_staff_are_refused_as_json(plain_user):
    anonymous = APIClient()
    response = anonymous.get(f"{API}/keys/")
    assert response.status_code in (401, 403) and "detail" in response.json()
    token = Token.objects.create(user=plain_user)
    plain = APIClient()
    plain.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert plain.get(f"{API}/keys/").status_code == 403
    assert anonymous.get(f"{API}/schema/").status_code in (401, 403)


def test_staff_needs_the_model_permission(db):
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("viewer", "", "pw", is_staff=True)
    client = APIClient()
    client.force_authenticate(user)
    assert client.get(f"{API}/teams/").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_team"))
    user = get_user_model().objects.get(pk=user.pk)  # drop the permission cache
    client.force_authenticate(user)
    assert client.get(f"{API}/teams/").status_code == 200
    assert client.post(f"{API}/teams/", {"name": "x"}, format="json").status_code == 403


def test_token_endpoint_is_for_staff_only(superuser, plain_user):
    client = APIClient()
    response = client.post(f"{API}/auth/token/", {"username": "ops", "password": "pw-for-tests-123"})
    assert response.status_code == 200 and response.json()["token"]
    response = client.post(f"{API}/auth/token/", {"username": "someone", "password": "pw-for-tests-123"})
    assert response.status_code == 403
    response = client.post(f"{API}/auth/token/", {"username": "ops", "password": "wrong"})
    assert response.status_code == 400


def test_unknown_path_is_a_json_404(api_client):
    response = api_client.get(f"{API}/nope/")
    assert response.status_code == 404 and "docs" in response.json()["detail"]
    assert api_client.get(f"{API}/keys/abc/").status_code == 404


# --- keys ------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_key_create_returns_the_secret_once(api_client, catalogue):
    team = Team.objects.create(name="finance")
    response = api_client.post(f"{API}/keys/", {
        "name": "ci-bot", "team": team.pk, "allowed_models": ["llama-3.3"], "metadata": {"cc": "4711"},
        "expires_at": (timezone.now() + timedelta(days=30)).isoformat(),
    }, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("sk-") and body["prefix"] == secret[:10]
    key = ApiKey.objects.get(pk=body["id"])
    assert key.lookup_hash == lookup_hash(secret)
    for url in (f"{API}/keys/", f"{API}/keys/{key.pk}/"):
        text = api_client.get(url).content.decode()
        assert secret not in text and "lookup_hash" not in text and "secret" not in text
    assert secret not in str(list(ApiKey.objects.values())) + str(list(AuditEntry.objects.values()))
    entry = AuditEntry.objects.get(object_type="usage.apikey")
    assert entry.actor == "api:ops" and entry.changes["lookup_hash"][1] == "••••••"


def test_key_update_disable_enable_rotate(api_client, catalogue):
    key, old = api_key_create(name="svc")
    url = f"{API}/keys/{key.pk}/"
    response = api_client.patch(url, {"allowed_models": ["embed-v4"], "metadata": {"app": "rag"}}, format="json")
    assert response.status_code == 200 and response.json()["allowed_models"] == ["embed-v4"]
    response = api_client.patch(url, {"allowed_models": ["embed-v5"]}, format="json")
    assert response.status_code == 400
    assert "did you mean 'embed-v4'" in response.json()["allowed_models"][0]
    response = api_client.patch(url, {"expires_at": "2001-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400 and "in the past" in response.json()["expires_at"][0]
    assert api_client.post(url + "disable/").json()["is_active"] is False
    assert api_client.post(url + "enable/").json()["is_active"] is True
    response = api_client.post(url + "rotate/", {"grace_seconds": 600}, format="json")
    assert response.status_code == 200
    new = response.json()["secret"]
    key.refresh_from_db()
    assert key.lookup_hash == lookup_hash(new) and key.previous_lookup_hash == lookup_hash(old)
    assert new not in api_client.get(url).content.decode()
    assert api_client.post(url + "rotate/", {"grace_seconds": -1}, format="json").status_code == 400
    actions = list(AuditEntry.objects.filter(object_type="usage.apikey", actor="api:ops")
                   .values_list("changes", flat=True))
    assert {"is_active": [True, False]} in actions
    assert any(set(c) >= {"lookup_hash", "previous_lookup_hash"} for c in actions)


def test_key_list_filters(api_client):
    team = Team.objects.create(name="t")
    api_key_create(name="a", team=team)
    key_b, _ = api_key_create(name="b")
    key_b.is_active = False
    key_b.save()
    assert [k["name"] for k in api_client.get(f"{API}/keys/?team={team.pk}").json()["results"]] == ["a"]
    assert [k["name"] for k in api_client.get(f"{API}/keys/?active=false").json()["results"]] == ["b"]
    assert api_client.get(f"{API}/keys/?active=maybe").status_code == 400


# --- catalogue -------------------------------------------------------------------------------------


def test_catalogue_crud_and_clear_errors(api_client, catalogue):
    response = api_client.post(f"{API}/credential-profiles/", {"name": "ip", "auth_type": "INSTANCE_PRINCIPAL"},
                               format="json")
    assert response.status_code == 201
    profile_id = response.json()["id"]
    response = api_client.post(f"{API}/deployments/", {
        "name": "grok-ashburn", "kind": "ondemand", "region": "us-ashburn-1", "model_id": "xai.grok-4",
        "credential": profile_id, "param_defaults": {"temperature": 0.3},
    }, format="json")
    assert response.status_code == 201, response.json()
    deployment_id = response.json()["id"]
    response = api_client.post(f"{API}/deployments/", {"name": "bad", "kind": "ondemand", "region": "ORD"},
                               format="json")
    assert response.status_code == 400
    assert "us-chicago-1" in response.json()["region"][0]
    response = api_client.post(f"{API}/deployments/", {"name": "bad", "kind": "ondemand"}, format="json")
    assert response.status_code == 400 and "meta.llama-3.3-70b-instruct" in response.json()["model_id"][0]
    response = api_client.post(f"{API}/public-models/", {"name": "grok"}, format="json")
    assert response.status_code == 201
    pm_id = response.json()["id"]
    route = api_client.post(f"{API}/routes/", {"public_model": pm_id, "deployment": deployment_id}, format="json")
    assert route.status_code == 201
    duplicate = api_client.post(f"{API}/routes/", {"public_model": pm_id, "deployment": deployment_id},
                                format="json")
    assert duplicate.status_code == 400
    model = api_client.get(f"{API}/public-models/{pm_id}/").json()
    assert [r["deployment_name"] for r in model["routes"]] == ["grok-ashburn"]
    assert api_client.patch(f"{API}/public-models/{pm_id}/", {"enabled": False}, format="json").status_code == 200
    assert not PublicModel.objects.get(pk=pm_id).enabled
    # A profile still used by a deployment cannot go: 409 names the user.
    response = api_client.delete(f"{API}/credential-profiles/{profile_id}/")
    assert response.status_code == 409 and "grok-ashburn" in response.json()["detail"]
    assert api_client.delete(f"{API}/deployments/{deployment_id}/").status_code == 204
    assert not Route.objects.filter(deployment_id=deployment_id).exists()
    assert api_client.delete(f"{API}/credential-profiles/{profile_id}/").status_code == 204
    assert not CredentialProfile.objects.exists()
    types = set(AuditEntry.objects.filter(actor="api:ops").values_list("object_type", flat=True))
    assert types == {"models_registry.credentialprofile", "models_registry.deployment",
                     "models_registry.publicmodel", "models_registry.route"}


def test_teams_crud(api_client, catalogue):
    response = api_client.post(f"{API}/teams/", {"name": "r", "allowed_models": ["nope"]}, format="json")
    assert response.status_code == 400 and "Unknown public model" in response.json()["allowed_models"][0]
    response = api_client.post(f"{API}/teams/", {"name": "r", "allowed_models": ["llama-3.3"]}, format="json")
    team_id = response.json()["id"]
    assert api_client.put(f"{API}/teams/{team_id}/", {"name": "r2"}, format="json").json()["name"] == "r2"
    assert api_client.delete(f"{API}/teams/{team_id}/").status_code == 204
    assert api_client.post(f"{API}/teams/", {"name": "x", "metadata": {"a": "\x00"}}, format="json"
                           ).status_code == 400


# --- usage -----------------------------------------------------------------------------------------


@pytest.fixture
def usage(db):
    team = Team.objects.create(name="t")
    k1, _ = api_key_create(name="k1", team=team)
    k2, _ = api_key_create(name="k2")
    now = timezone.now()
    rows = []
    for i in range(30):
        rows.append(UsageRecord(
            request_id=f"r{i}", created_at=now - timedelta(days=i % 3, minutes=i), key=k1 if i % 2 else k2,
            team=team if i % 2 else None, endpoint="chat.completions", public_model="m1" if i < 20 else "m2",
            status=200 if i % 10 else 500, prompt_tokens=10, completion_tokens=5, total_tokens=15,
            cost_usd="0.001",
        ))
    UsageRecord.objects.bulk_create(rows)
    return {"k1": k1, "k2": k2, "team": team}


@pytest.mark.smoke
def test_usage_list_filters_and_cursor_pages(api_client, usage):
    first = api_client.get(f"{API}/usage/?page_size=10").json()
    assert len(first["results"]) == 10 and first["next"] and "count" not in first
    second = api_client.get(first["next"]).json()
    assert {r["id"] for r in first["results"]}.isdisjoint(r["id"] for r in second["results"])
    only = api_client.get(f"{API}/usage/?key={usage['k2'].pk}&status=500").json()["results"]
    assert len(only) == 3 and all(r["key"] == usage["k2"].pk and r["status"] == 500 for r in only)
    assert api_client.get(f"{API}/usage/?key={usage['k1'].pk}&status=500").json()["results"] == []
    assert api_client.get(f"{API}/usage/?start=yesterday").status_code == 400
    bad = api_client.get(f"{API}/usage/?start=2030-01-02T00:00:00Z&end=2030-01-01T00:00:00Z")
    assert bad.status_code == 400 and "end" in bad.json()


def test_usage_rollups(api_client, usage):
    by_key = api_client.get(f"{API}/usage/rollup/?group_by=key").json()
    assert {r["label"]: r["requests"] for r in by_key["rows"]} == {"k1": 15, "k2": 15}
    by_model = api_client.get(f"{API}/usage/rollup/?group_by=model").json()["rows"]
    assert {r["group"]: (r["requests"], r["total_tokens"]) for r in by_model} == {"m1": (20, 300), "m2": (10, 150)}
    by_day = api_client.get(f"{API}/usage/rollup/?group_by=day").json()["rows"]
    assert sum(r["requests"] for r in by_day) == 30 and len(by_day) in (3, 4)
    assert sum(r["errors"] for r in by_day) == 3
    assert abs(sum(r["cost_usd"] for r in by_day) - 0.03) < 1e-9
    by_team = api_client.get(f"{API}/usage/rollup/?group_by=team").json()["rows"]
    assert {r["label"] for r in by_team} == {"t", "(none)"}
    assert api_client.get(f"{API}/usage/rollup/?group_by=week").status_code == 400


# --- schema and docs -------------------------------------------------------------------------------


def _schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.mark.smoke
def test_openapi_schema_validates_and_is_served(api_client, tmp_path):
    validate_schema(_schema())  # drf-spectacular's own check (raises on an invalid document)
    # ... and with no generator warnings (an unannotated view would degrade the schema silently).
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    response = api_client.get(f"{API}/schema/?format=json")
    assert response.status_code == 200
    openapi_spec_validator.validate(response.json())  # an independent OpenAPI 3 validator
    paths = response.json()["paths"]
    for p in ("/manage/api/keys/", "/manage/api/keys/{id}/rotate/", "/manage/api/usage/rollup/",
              "/manage/api/discovery/", "/manage/api/routes/", "/manage/api/credential-profiles/"):
        assert p in paths


def test_docs_use_vendored_assets(staff_client):
    for page in ("docs", "redoc"):
        html = staff_client.get(f"{API}/{page}/").content.decode()
        assert "drf_spectacular_sidecar" in html, page
        assert "cdn." not in html and "unpkg" not in html, page


# --- fuzzing: no input makes the API answer 500 ------------------------------------------------------

# Every operation is fuzzed; the boundary-value ("coverage") phase, which makes most of the requests,
# runs for POST and GET only: PUT and PATCH bodies go through the same serializers as POST.
# That keeps the run near 30 s on PostgreSQL.
FUZZ_CONFIG = SchemathesisConfig.from_dict({
    "phases": {"coverage": {"unexpected-methods": []}},
    "operations": [{"include-method-regex": "^(PUT|PATCH)$", "phases": {"coverage": {"enabled": False}}}],
})
fuzz_schema = schemathesis.openapi.from_dict(_schema(), config=FUZZ_CONFIG)
fuzz_schema.app = get_wsgi_application()
# Discovery calls OCI: covered (with the emulator) in test_discovery.py, not fuzzed here.
fuzz_schema = fuzz_schema.exclude(path="/manage/api/discovery/")


@pytest.fixture
def in_process_wsgi():
    """Keep the test's database connection across requests, as Django's test client does.

    A real WSGI handler closes "old" connections around each request, which inside a test transaction
    would close the connection holding the test data.
    """
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def quiet_client_errors():
    """Thousands of expected 4xx answers: keep their WARNING lines out of the log (5xx stay ERROR)."""
    import logging

    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.fixture
def fuzz_token(superuser, catalogue, in_process_wsgi, quiet_client_errors):
    key, _ = api_key_create(name="existing", team=Team.objects.create(name="existing"))
    UsageRecord.objects.create(request_id="r1", key=key, endpoint="chat.completions", status=200)
    CredentialProfile.objects.create(name="existing", auth_type="INSTANCE_PRINCIPAL")
    return Token.objects.get_or_create(user=superuser)[0].key


@pytest.mark.slow
@fuzz_schema.parametrize()
@settings(max_examples=5, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_500(case, fuzz_token):
    response = case.call(headers={"Authorization": f"Token {fuzz_token}"})
    case.validate_response(response, checks=[not_a_server_error])
