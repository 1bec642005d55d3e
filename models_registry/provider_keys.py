"""API keys of `openai_compatible` deployments: encrypted at rest, or referenced from the environment.

An operator who types a key in the admin gets it encrypted with GATEWAY_ENCRYPTION_KEY (Fernet:
AES-128-CBC + HMAC-SHA256). Several comma-separated keys allow rotation: the first encrypts, all
decrypt. Imports never carry keys in clear: they name an environment variable (`env:NAME`, `${NAME}`,
`$NAME` or LiteLLM's `os.environ/NAME`), read when the catalog is built.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

_ENV_REFERENCE = (
    re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$"),
    re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$"),
    re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$"),
    re.compile(r"^os\.environ/([A-Za-z_][A-Za-z0-9_]*)$"),
)


class KeyUnavailable(Exception):
    """The deployment's API key cannot be obtained; the message says why (never the key)."""


def env_reference(value: str) -> str | None:
    """The variable name an environment reference points at, or None when `value` is not one."""
    value = (value or "").strip()
    for pattern in _ENV_REFERENCE:
        match = pattern.match(value)
        if match:
            return match.group(1)
    return None


def _fernet_key(secret: str) -> bytes:
    """A Fernet key as given (44 url-safe base64 characters), or derived from any other passphrase."""
    raw = secret.encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32 and len(raw) == 44:
            return raw
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(b"oci-genai-gateway/provider-keys\0" + raw).digest())


def _box() -> MultiFernet:
    secrets = [s.strip() for s in (settings.GATEWAY_ENCRYPTION_KEY or "").split(",") if s.strip()]
    if not secrets:
        raise KeyUnavailable(
            "GATEWAY_ENCRYPTION_KEY is not set: the gateway cannot encrypt or decrypt stored API keys."
        )
    return MultiFernet([Fernet(_fernet_key(s)) for s in secrets])


def encrypt(plaintext: str) -> str:
    return _box().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _box().decrypt(token.encode()).decode()
    except InvalidToken:
        raise KeyUnavailable(
            "the stored API key does not decrypt with GATEWAY_ENCRYPTION_KEY (was the key changed without "
            "keeping the old one after a comma?)"
        ) from None


def resolve(*, encrypted: str, env_name: str) -> str:
    """The clear key for an upstream call: the environment reference wins over a stored key."""
    if env_name:
        value = os.environ.get(env_name, "")
        if not value:
            raise KeyUnavailable(f"the environment variable {env_name} is not set")
        return value
    if encrypted:
        return decrypt(encrypted)
    return ""
