"""One invalidation bus: every write path reaches another running gateway process within 2 seconds."""

import time
from datetime import timedelta
from io import StringIO

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from models_registry.models import Deployment, PublicModel
from models_registry.services import models_import
from usage.keys import api_key_create, api_key_disable, api_key_rotate
from usage.models import ApiKey

pytestmark = [pytest.mark.django_db(transaction=True)]

DEADLINE = 2.0


def models_status(proc, secret) -> int:
    return httpx.get(proc.base_url + "/v1/models", headers={"Authorization": f"Bearer {secret}"}, timeout=5).status_code


def model_ids(proc, secret) -> set[str]:
    response = httpx.get(proc.base_url + "/v1/models", headers={"Authorization": f"Bearer {secret}"}, timeout=5)
    return {m["id"] for m in response.json()["data"]}


def within_deadline(check) -> float:
    """Seconds until `check()` holds; fails past the deadline."""
    start = time.monotonic()
    while not check():
        elapsed = time.monotonic() - start
        assert elapsed < DEADLINE, f"change not visible on the other process after {elapsed:.2f}s"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_superuser("ops", "", "pw-for-tests-123")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def live_key(gateway_process):
    key, secret = api_key_create(name="victim")
    assert models_status(gateway_process, secret) == 200  # now cached on the other process
    return key, secret


def test_disable_by_service_reaches_other_process(gateway_process, live_key):
    key, secret = live_key
    api_key_disable(key=key)
    within_deadline(lambda: models_status(gateway_process, secret) == 401)


def test_disable_by_command_reaches_other_process(gateway_process, live_key):
    key, secret = live_key
    call_command("disable_api_key", key.name, stdout=StringIO())
    within_deadline(lambda: models_status(gateway_process, secret) == 401)


def test_rotate_by_command_reaches_other_process(gateway_process, live_key):
    key, secret = live_key
    out = StringIO()
    call_command("rotate_api_key", key.name, stdout=out, stderr=StringIO())
    new_secret = out.getvalue().strip().splitlines()[-1]
    within_deadline(lambda: models_status(gateway_process, secret) == 401)
    assert models_status(gateway_process, new_secret) == 200


def test_rotate_by_service_with_grace_keeps_old_secret(gateway_process, live_key):
    key, secret = live_key
    new_secret = api_key_rotate(key=key, grace=timedelta(minutes=5))
    within_deadline(lambda: models_status(gateway_process, new_secret) == 200)
    assert models_status(gateway_process, secret) == 200


def test_disable_in_admin_reaches_other_process(gateway_process, live_key, staff_client):
    key, secret = live_key
    response = staff_client.post(
        f"/admin/usage/apikey/{key.pk}/change/",
        {"name": key.name, "allowed_models": "[]", "metadata": "{}", "team": "", "owner": "", "expires_at_0": "",
         "expires_at_1": ""},  # is_active left unchecked
    )
    assert response.status_code in (200, 302), response.content[:500]
    key.refresh_from_db()
    assert key.is_active is False, "admin form did not save"
    within_deadline(lambda: models_status(gateway_process, secret) == 401)


def test_catalog_changes_from_each_write_path_reach_other_process(gateway_process, live_key, staff_client):
    _key, secret = live_key
    yaml_text = """
- region: us-chicago-1
  compartment_id: ocid1.compartment.oc1..emulator
  models:
    ondemand:
      - name: bus-test-model
        model_id: meta.llama-3.3-70b-instruct
"""
    models_import(text=yaml_text, source="bus-test")  # import service / import_models command
    within_deadline(lambda: "bus-test-model" in model_ids(gateway_process, secret))

    deployment = Deployment.objects.get(routes__public_model__name="bus-test-model")
    staff_client.post("/admin/models_registry/deployment/", {"action": "disable", "_selected_action": [deployment.pk]})
    within_deadline(lambda: "bus-test-model" not in model_ids(gateway_process, secret))

    Deployment.objects.filter(pk=deployment.pk).update(enabled=True)  # a raw bulk write bumps nothing ...
    from models_registry import bus

    bus.bump("catalog")  # ... so services that use one bump explicitly
    within_deadline(lambda: "bus-test-model" in model_ids(gateway_process, secret))

    PublicModel.objects.get(name="bus-test-model").delete()
    within_deadline(lambda: "bus-test-model" not in model_ids(gateway_process, secret))
    assert ApiKey.objects.count() == 1


def test_disable_and_rotate_through_management_api_reach_other_process(gateway_process, live_key, staff_client):
    key, secret = live_key
    response = staff_client.post(f"/manage/api/keys/{key.pk}/rotate/", content_type="application/json", data={})
    assert response.status_code in (200, 201), response.content[:300]
    new_secret = response.json()["secret"]
    within_deadline(lambda: models_status(gateway_process, secret) == 401)
    assert models_status(gateway_process, new_secret) == 200
    response = staff_client.post(f"/manage/api/keys/{key.pk}/disable/", content_type="application/json", data={})
    assert response.status_code in (200, 204), response.content[:300]
    within_deadline(lambda: models_status(gateway_process, new_secret) == 401)
