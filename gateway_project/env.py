"""Tiny typed helpers for reading settings from the environment.

Every setting comes from the environment (a `.env` file is read first when present; the real
environment wins). Bad values fail loudly at start-up with a one-line reason.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger("gateway.settings")

# Old names from the seed gateways, kept working with a one-line deprecation notice.
ALIASES: dict[str, tuple[str, ...]] = {
    "GATEWAY_API_KEYS": ("DEFAULT_API_KEYS", "API_KEYS", "API_KEY"),
    "OCI_CONFIG_PROFILE": ("OCI_CONFIG_FILE_KEY",),
    "OCI_AUTH_TYPE": ("AUTH_TYPE",),
    "OCI_REGION": ("OCI_CONFIG_REGION",),
}
_warned: set[str] = set()


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value not in (None, ""):
        return value
    for alias in ALIASES.get(name, ()):
        value = os.environ.get(alias)
        if value not in (None, ""):
            if alias not in _warned:
                _warned.add(alias)
                log.warning("%s is deprecated; use %s instead", alias, name)
            return value
    return default


def envbool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def envint(name: str, default: int) -> int:
    value = env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def envfloat(name: str, default: float) -> float:
    value = env(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


def envsecret(name: str, default: str | None = None) -> str | None:
    """`X` or the contents of the file named by `X_FILE` (Kubernetes / Docker secrets)."""
    value = env(name)
    if value is not None:
        return value
    path = env(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {exc.strerror}") from None
    return default
