"""API keys: hashed at rest, shown once, rotation grace, environment keys, the create_api_key command."""

import base64
import shutil
import subprocess
from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from usage.auth import authenticate
from usage.keys import api_key_create, api_key_disable, api_key_rotate, environment_keys_sync, lookup_hash
from usage.models import ApiKey, Team

pytestmark = [pytest.mark.django_db(transaction=True)]


def auth(secret):
    return async_to_sync(authenticate)(secret)


@pytest.mark.smoke
def test_secret_is_not_stored_only_its_hmac():
    key, secret = api_key_create(name="a")
    assert secret.startswith("sk-") and len(secret) > 40
    row = ApiKey.objects.filter(pk=key.pk).values().get()
    assert secret not in str(row)
    assert row["lookup_hash"] == lookup_hash(secret) != secret
    assert row["prefix"] == secret[:10]


@pytest.mark.smoke
def test_authenticate_known_unknown_disabled_expired():
    key, secret = api_key_create(name="a", allowed_models=["m1"])
    principal = auth(secret)
    assert principal.name == "a" and principal.may_use("m1") and not principal.may_use("m2")
    assert auth(secret + "x") is None
    assert auth("") is None
    api_key_disable(key=key)
    assert auth(secret) is None
    _k2, s2 = api_key_create(name="b", expires_at=timezone.now() - timedelta(seconds=1))
    assert auth(s2) is None


def test_team_allowlist_and_metadata_apply():
    team = Team.objects.create(name="t", allowed_models=["m1", "m2"], metadata={"cost_centre": "42"})
    _key, secret = api_key_create(name="a", team=team, allowed_models=["m2", "m3"], metadata={"app": "x"})
    principal = auth(secret)
    assert principal.may_use("m2") and not principal.may_use("m1") and not principal.may_use("m3")
    assert principal.metadata == {"cost_centre": "42", "app": "x"}


def test_rotation_with_and_without_grace():
    key, old = api_key_create(name="a")
    assert auth(old) is not None
    new = api_key_rotate(key=key, grace=timedelta(minutes=5))
    assert auth(new) is not None and auth(old) is not None
    newer = api_key_rotate(key=key)
    assert auth(newer) is not None
    assert auth(new) is None and auth(old) is None


def test_environment_keys_are_synced_hashed_and_disabled_when_removed():
    assert environment_keys_sync(secrets_from_env=["env-key-one-0123456789", "env-key-two-0123456789"]) == (2, 0)
    assert environment_keys_sync(secrets_from_env=["env-key-one-0123456789", "env-key-two-0123456789"]) == (0, 0)
    assert auth("env-key-two-0123456789").name.startswith("env-")
    assert environment_keys_sync(secrets_from_env=["env-key-one-0123456789"]) == (0, 1)
    assert auth("env-key-two-0123456789") is None
    assert not ApiKey.objects.filter(lookup_hash__contains="env-key").exists()


def test_create_api_key_command_prints_secret_alone_on_last_line():
    out = StringIO()
    call_command("create_api_key", "ci", "--team", "blue", "--models", "a,b", "--expires", "2099-01-31",
                 "--metadata", "owner=ops@example.com", stdout=out, stderr=StringIO())
    secret = out.getvalue().strip().splitlines()[-1]
    principal = auth(secret)
    assert principal.name == "ci" and principal.team_name == "blue"
    assert principal.allowed_models == frozenset({"a", "b"})
    assert principal.metadata == {"owner": "ops@example.com"}
    assert principal.expires_at.year == 2099


def test_database_dump_contains_no_secret_in_any_encoding(tmp_path):
    secrets = [api_key_create(name=f"k{i}")[1] for i in range(3)]
    if connection.vendor == "postgresql" and shutil.which("pg_dump"):
        db = settings.DATABASES["default"]
        dump = subprocess.run(
            ["pg_dump", "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"] or "postgres",
             db["NAME"]],
            capture_output=True, check=True,
        ).stdout
    else:
        out = StringIO()
        call_command("dumpdata", "usage", stdout=out)
        dump = out.getvalue().encode()
    assert b"lookup_hash" in dump or b"CREATE TABLE" in dump
    for secret in secrets:
        raw = secret.encode()
        for form in (raw, raw.hex().encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw),
                     secret[3:].encode()):
            assert form not in dump
