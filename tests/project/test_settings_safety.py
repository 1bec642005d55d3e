"""Start-up refuses unsafe production settings with a one-line reason."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke
ROOT = Path(__file__).resolve().parents[2]


def start(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GATEWAY_", "ALLOWED_HOSTS"))}
    base.update({"GATEWAY_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "gateway_project.settings",
                 "GATEWAY_ENV_FILE": str(tmp_path / "none.env")})
    base.update(env)
    return subprocess.run([sys.executable, "-c", "import django; django.setup(); print('ok')"], cwd=ROOT,
                          env=base, capture_output=True, text=True)


def test_production_without_secret_key_is_refused(tmp_path):
    result = start(tmp_path, GATEWAY_PRODUCTION="true")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_default_secret_key_is_refused(tmp_path):
    result = start(tmp_path, DJANGO_SECRET_KEY="django-insecure-abc")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is a default or too short" in result.stderr


def test_wildcard_hosts_are_refused_without_debug(tmp_path):
    result = start(tmp_path, ALLOWED_HOSTS="*")
    assert "ALLOWED_HOSTS must not contain '*'" in result.stderr
    assert start(tmp_path, ALLOWED_HOSTS="*", DJANGO_DEBUG="true").returncode == 0


def test_dev_secret_is_generated_under_var_and_reused(tmp_path):
    assert start(tmp_path).stdout.strip() == "ok"
    key = (tmp_path / "dev-secret-key").read_text()
    assert len(key) > 40
    assert start(tmp_path).returncode == 0
    assert (tmp_path / "dev-secret-key").read_text() == key


def test_secret_from_file_and_bad_boolean(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("x" * 50)
    assert start(tmp_path, GATEWAY_PRODUCTION="true", DJANGO_SECRET_KEY_FILE=str(secret_file)).returncode == 0
    bad = start(tmp_path, DJANGO_DEBUG="maybe")
    assert "DJANGO_DEBUG must be a boolean" in bad.stderr


def test_seed_alias_is_honoured_with_a_notice(tmp_path):
    code = "import django; django.setup(); from django.conf import settings; print(settings.GATEWAY_API_KEYS)"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GATEWAY_"))}
    base.update({"GATEWAY_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "gateway_project.settings",
                 "DEFAULT_API_KEYS": "a1,b2"})
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True)
    assert result.stdout.strip() == "['a1', 'b2']"
    assert "DEFAULT_API_KEYS is deprecated; use GATEWAY_API_KEYS" in result.stderr
