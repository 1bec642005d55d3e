"""API keys in the admin: the secret is shown once at creation and rotation, never again; revoke, extend."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from audit.services import MASK
from usage.keys import api_key_create, lookup_hash
from usage.models import ApiKey, Team

from .conftest import admin_form

pytestmark = [pytest.mark.django_db]

SECRET_RE = re.compile(r"sk-[A-Za-z0-9_\-]{20,}")


def secret_in(response) -> str:
    found = SECRET_RE.findall(response.content.decode())
    assert len(set(found)) == 1, "the page should show exactly one secret"
    return found[0]


def assert_secret_nowhere(client, secret: str, key: ApiKey) -> None:
    """Not on any later page, not in a cookie, not in any table."""
    pages = [
        reverse("admin:index"),
        reverse("admin:usage_apikey_changelist"),
        reverse("admin:usage_apikey_change", args=[key.pk]),
        reverse("admin:usage_apikey_history", args=[key.pk]),
        reverse("admin:audit_auditentry_changelist"),
    ] + [reverse("admin:audit_auditentry_change", args=[e.pk]) for e in AuditEntry.objects.all()]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert secret not in response.content.decode(), url
    assert all(secret not in morsel.value for morsel in client.cookies.values())
    assert secret not in str(list(ApiKey.objects.values()))
    assert secret not in str(list(AuditEntry.objects.values()))
    assert secret not in str(list(LogEntry.objects.values()))
    assert all(secret not in str(s.get_decoded()) for s in Session.objects.all())


def add_key(client, **fields):
    url = reverse("admin:usage_apikey_add")
    return client.post(url, admin_form(client, url, **{"name": "billing-app", **fields}))


@pytest.mark.smoke
def test_create_shows_the_secret_once_and_never_again(staff_client, catalogue):
    team = Team.objects.create(name="finance")
    response = add_key(staff_client, team=str(team.pk), allowed_models="llama-3.3", metadata='{"cc": "4711"}')
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = secret_in(response)
    assert "shown only once" in response.content.decode()
    assert "Copy to clipboard" in response.content.decode()
    key = ApiKey.objects.get(name="billing-app")
    assert key.lookup_hash == lookup_hash(secret) and key.prefix == secret[:10]
    assert key.team == team and key.allowed_models == ["llama-3.3"] and key.metadata == {"cc": "4711"}
    assert_secret_nowhere(staff_client, secret, key)
    entry = AuditEntry.objects.get(object_type="usage.apikey", action="create")
    assert entry.actor == "admin:ops" and entry.channel == "admin"
    assert entry.changes["lookup_hash"] == [None, MASK]
    assert entry.changes["name"] == [None, "billing-app"]


def test_create_with_owner_and_validation_messages(staff_client, superuser, catalogue):
    past = timezone.now() - timedelta(days=1)
    response = add_key(staff_client, allowed_models="lama-3.3", expires_at_0=past.strftime("%Y-%m-%d"),
                       expires_at_1="10:00:00")
    page = response.content.decode()
    assert response.status_code == 200 and not SECRET_RE.search(page)
    assert "did you mean &#x27;llama-3.3&#x27;" in page or "did you mean 'llama-3.3'" in page
    assert "This date is in the past" in page
    assert not ApiKey.objects.exists()
    response = add_key(staff_client, owner=str(superuser.pk), allowed_models='["llama-3.3", "embed-v4"]')
    secret_in(response)
    key = ApiKey.objects.get()
    assert key.owner == superuser and key.allowed_models == ["llama-3.3", "embed-v4"]


def test_change_form_keeps_json_input_working(staff_client):
    key, _secret = api_key_create(name="victim")
    response = staff_client.post(reverse("admin:usage_apikey_change", args=[key.pk]), {
        "name": key.name, "allowed_models": "[]", "metadata": "{}", "team": "", "owner": "",
        "expires_at_0": "", "expires_at_1": "",
    })
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.is_active is False
    entry = AuditEntry.objects.get(object_type="usage.apikey", action="update")
    assert entry.changes == {"is_active": [True, False]} and entry.actor == "admin:ops"


@pytest.mark.smoke
def test_rotation_with_grace_shows_the_new_secret_once(staff_client):
    key, old = api_key_create(name="rotating")
    url = reverse("admin:usage_apikey_rotate", args=[key.pk])
    page = staff_client.get(url)
    assert page.status_code == 200 and "Rotate the secret" in page.content.decode()
    assert "Rotate secret" in staff_client.get(reverse("admin:usage_apikey_change", args=[key.pk])).content.decode()
    response = staff_client.post(url, {"grace": "3600"})
    assert response.status_code == 200
    new = secret_in(response)
    assert new != old and "previous secret keeps working until" in response.content.decode()
    key.refresh_from_db()
    assert key.lookup_hash == lookup_hash(new) and key.previous_lookup_hash == lookup_hash(old)
    assert key.previous_valid_until > timezone.now() + timedelta(minutes=59)
    assert_secret_nowhere(staff_client, new, key)
    entry = AuditEntry.objects.get(object_type="usage.apikey", action="update")
    assert entry.actor == "admin:ops"
    assert entry.changes["lookup_hash"] == [MASK, MASK]
    assert entry.changes["previous_lookup_hash"] == ["", MASK]
    assert "last_rotated_at" in entry.changes


def test_rotation_without_grace_ends_the_old_secret(staff_client):
    key, old = api_key_create(name="rotating")
    response = staff_client.post(reverse("admin:usage_apikey_rotate", args=[key.pk]), {"grace": "0"})
    assert "stopped working now" in response.content.decode()
    key.refresh_from_db()
    assert key.previous_lookup_hash == "" and key.lookup_hash != lookup_hash(old)


def test_rotate_action_takes_one_key(staff_client):
    k1, _ = api_key_create(name="a")
    k2, _ = api_key_create(name="b")
    url = reverse("admin:usage_apikey_changelist")
    response = staff_client.post(url, {"action": "rotate", "_selected_action": [k1.pk, k2.pk], "index": "0"},
                                 follow=True)
    assert "Rotate one key at a time" in response.content.decode()
    response = staff_client.post(url, {"action": "rotate", "_selected_action": [k1.pk], "index": "0"})
    assert response.status_code == 302 and response["Location"].endswith(f"/{k1.pk}/rotate/")


def test_revoke_and_enable_actions(staff_client):
    keys = [api_key_create(name=f"k{i}")[0] for i in range(3)]
    url = reverse("admin:usage_apikey_changelist")
    staff_client.post(url, {"action": "revoke", "_selected_action": [k.pk for k in keys], "index": "0"})
    assert not ApiKey.objects.filter(is_active=True).exists()
    assert AuditEntry.objects.filter(action="update", actor="admin:ops").count() == 3
    staff_client.post(url, {"action": "enable", "_selected_action": [keys[0].pk], "index": "0"})
    assert list(ApiKey.objects.filter(is_active=True)) == [keys[0]]


def test_extend_action_asks_then_extends(staff_client):
    soon = timezone.now() + timedelta(days=2)
    expiring, _ = api_key_create(name="expiring", expires_at=soon)
    forever, _ = api_key_create(name="forever")
    url = reverse("admin:usage_apikey_changelist")
    selected = [expiring.pk, forever.pk]
    page = staff_client.post(url, {"action": "extend_expiry", "_selected_action": selected, "index": "0"})
    assert page.status_code == 200 and "Extend by (days)" in page.content.decode()
    response = staff_client.post(url, {"action": "extend_expiry", "_selected_action": selected, "apply": "1",
                                       "days": "30"}, follow=True)
    assert "Extended 1 key(s) by 30 days" in response.content.decode()
    assert "never expire: forever" in response.content.decode()
    expiring.refresh_from_db()
    assert abs((expiring.expires_at - (soon + timedelta(days=30))).total_seconds()) < 1
    entry = AuditEntry.objects.get(action="update", object_id=str(expiring.pk))
    assert list(entry.changes) == ["expires_at"]


def test_expiry_filter_and_status(staff_client):
    api_key_create(name="old", expires_at=timezone.now() - timedelta(days=1))
    api_key_create(name="fresh")
    url = reverse("admin:usage_apikey_changelist")
    page = staff_client.get(url + "?expiry=expired").content.decode()
    assert "expired" in page and "fresh" not in page
    assert "fresh" in staff_client.get(url + "?expiry=never").content.decode()


def test_rotation_needs_staff(client, plain_client):
    key, _ = api_key_create(name="x")
    url = reverse("admin:usage_apikey_rotate", args=[key.pk])
    for c in (client, plain_client):
        response = c.post(url, {"grace": "0"})
        assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    key_before = key.lookup_hash
    key.refresh_from_db()
    assert key.lookup_hash == key_before


def test_rotating_a_missing_key_redirects(staff_client):
    response = staff_client.get(reverse("admin:usage_apikey_rotate", args=[999999]))
    assert response.status_code == 302
