"""What `manage.py serve` does before it serves: demo mode, credentials, keys, first superuser."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

log = logging.getLogger("gateway.startup")

_emulator: subprocess.Popen | None = None


def demo_wanted() -> bool:
    """Demo mode only when asked for (make run) and no real OCI credentials are configured at all."""
    return (
        settings.GATEWAY_DEMO == "auto"
        and settings.OCI_AUTH_TYPE == "API_KEY"
        and not os.path.exists(settings.OCI_CONFIG_FILE)
        and not settings.OCI_GENAI_ENDPOINT
        and not os.environ.get("OCI_USER")
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Linux: the emulator gets SIGTERM when the gateway dies, however it dies (uvicorn re-raises SIGTERM,
    which ends this process before any `finally` could stop the emulator)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_demo_emulator() -> dict[str, str]:
    """Start the emulator beside the gateway; return the environment that points the gateway at it."""
    global _emulator
    from oci_emulator.credentials import generate_credentials, load_credentials

    directory = Path(settings.VAR_DIR) / "emulator"
    config = directory / "config"
    creds = load_credentials(str(config)) if config.exists() else generate_credentials(str(directory))
    port = _free_port()
    _emulator = subprocess.Popen(
        [sys.executable, "-m", "oci_emulator", "--host", "127.0.0.1", "--port", str(port), "--config",
         creds.config_file],
        stdout=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if _emulator.poll() is not None:
                raise CommandError("the demo OCI emulator exited at start-up") from None
            time.sleep(0.1)
    else:
        raise CommandError("the demo OCI emulator did not start within 20 s")
    return {
        "OCI_GENAI_ENDPOINT": f"http://127.0.0.1:{port}",
        "OCI_CONFIG_FILE": creds.config_file,
        "OCI_CONFIG_PROFILE": "DEFAULT",
        "OCI_REGION": creds.region,
        "OCI_COMPARTMENT": creds.compartment_id,
        "GATEWAY_DEMO_ACTIVE": "true",
    }


def stop_demo_emulator() -> None:
    if _emulator is not None and _emulator.poll() is None:
        _emulator.terminate()
        try:
            _emulator.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _emulator.kill()


def _check_credentials() -> None:
    if settings.OCI_AUTH_TYPE != "API_KEY":
        return
    if os.environ.get("OCI_USER") and (os.environ.get("OCI_KEY") or os.environ.get("OCI_KEY_FILE")):
        return
    if not os.path.exists(settings.OCI_CONFIG_FILE):
        raise CommandError(
            f"no OCI credentials: {settings.OCI_CONFIG_FILE} does not exist (set OCI_CONFIG_FILE, the OCI_USER/"
            "OCI_TENANCY/OCI_FINGERPRINT/OCI_KEY_FILE variables, or OCI_AUTH_TYPE; `make run` uses demo mode)"
        )


def _check_migrations() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise CommandError("the database has unapplied migrations: run `python manage.py migrate` first")


def _collect_static() -> None:
    """The admin's and API docs' assets, served by WhiteNoise (intranets have no CDN)."""
    from django.core.management import call_command

    call_command("collectstatic", "--noinput", verbosity=0)


def _superuser_from_environment() -> list[str]:
    from django.contrib.auth import get_user_model

    from gateway_project.env import envsecret

    username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
    password = envsecret("DJANGO_SUPERUSER_PASSWORD")
    User = get_user_model()
    if username and password and not User.objects.filter(username=username).exists():
        User.objects.create_superuser(username=username, email="", password=password)
        return [f"Created superuser {username!r} from DJANGO_SUPERUSER_USERNAME."]
    return []


def _demo_admin() -> list[str]:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return []
    password = secrets.token_urlsafe(12)
    User.objects.create_superuser(username="admin", email="", password=password)
    return [f"Demo admin login: admin / {password}  (http://{settings.HOST}:{settings.PORT}/admin/)"]


def _usage_partitions_ensure() -> None:
    """PostgreSQL: partitions for this month's and the next months' usage rows (usage/partitions.py)."""
    from usage.partitions import usage_partitions_ensure

    try:
        usage_partitions_ensure()
    except Exception as exc:  # not fatal: the DEFAULT partition takes the rows, prune_usage tries again
        log.warning("usage partitions not ensured: %s", exc)


def prepare_to_serve() -> list[str]:
    """Run the start-up checks and one-time set-up; return the lines to print."""
    from usage.keys import api_key_create, api_key_rotate, environment_keys_sync, first_key_ensure
    from usage.models import ApiKey

    banner: list[str] = []
    from gateway_project import gc_tuning

    gc_tuning.thresholds()  # a malformed GATEWAY_GC_THRESHOLDS stops start-up here, in one line
    _check_migrations()
    _collect_static()
    _usage_partitions_ensure()
    if demo_wanted():
        env = start_demo_emulator()
        os.environ.update(env)  # worker processes read their settings from the environment ...
        for name in ("OCI_GENAI_ENDPOINT", "OCI_CONFIG_FILE", "OCI_CONFIG_PROFILE", "OCI_REGION", "OCI_COMPARTMENT"):
            setattr(settings, name, env[name])  # ... and a single worker runs in this one
        settings.OCI_GENAI_MANAGEMENT_ENDPOINT = env["OCI_GENAI_ENDPOINT"]
        settings.GATEWAY_DEMO_ACTIVE = True
        from models_registry.demo import demo_models_register

        summary = demo_models_register(region=env["OCI_REGION"], compartment_id=env["OCI_COMPARTMENT"])
        banner.append(f"DEMO MODE: answers come from the built-in OCI emulator at {env['OCI_GENAI_ENDPOINT']}.")
        banner.append(f"Demo models: {summary}.")
        banner += _demo_admin()
        # Only a hash is stored, so each demo start gives the demo key a fresh secret to print.
        demo_key = ApiKey.objects.filter(source=ApiKey.Source.DEMO).first()
        if demo_key is None:
            _key, secret = api_key_create(name="demo", source=ApiKey.Source.DEMO)
        else:
            demo_key.is_active = True
            secret = api_key_rotate(key=demo_key)
        banner.append(f"Demo API key: {secret}")
    else:
        _check_credentials()
    added, disabled = environment_keys_sync(secrets_from_env=settings.GATEWAY_API_KEYS)
    if added or disabled:
        banner.append(f"GATEWAY_API_KEYS: {added} added, {disabled} disabled.")
    secret = first_key_ensure()
    if secret:
        banner.append(f"No API key existed, so one was created. It is shown only now: {secret}")
    banner += _superuser_from_environment()
    return banner
