"""API key secrets: generation, hashing, creation, rotation.

The secret (`sk-…`) is shown once. The database keeps a short display prefix and an HMAC-SHA256 of
the secret, peppered from the environment, which doubles as the lookup index: no secret is ever
stored or compared in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import ApiKey, Team

SECRET_PREFIX = "sk-"
DISPLAY_PREFIX_LEN = 10


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def lookup_hash(secret: str) -> str:
    return hmac.new(settings.GATEWAY_KEY_PEPPER.encode(), secret.encode(), hashlib.sha256).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:DISPLAY_PREFIX_LEN]


def api_key_create(
    *,
    name: str,
    team: Team | None = None,
    allowed_models: list[str] | None = None,
    expires_at: datetime | None = None,
    metadata: dict | None = None,
    source: str = ApiKey.Source.ADMIN,
    secret: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; return it with its secret, which is never retrievable again."""
    secret = secret or generate_secret()
    key = ApiKey.objects.create(
        name=name,
        prefix=display_prefix(secret),
        lookup_hash=lookup_hash(secret),
        team=team,
        allowed_models=list(allowed_models or []),
        expires_at=expires_at,
        metadata=dict(metadata or {}),
        source=source,
    )
    return key, secret


@transaction.atomic
def api_key_rotate(*, key: ApiKey, grace: timedelta = timedelta(0)) -> str:
    """Give `key` a new secret; the old one keeps working for `grace`."""
    secret = generate_secret()
    if grace > timedelta(0):
        key.previous_lookup_hash = key.lookup_hash
        key.previous_valid_until = timezone.now() + grace
    else:
        key.previous_lookup_hash = ""
        key.previous_valid_until = None
    key.lookup_hash = lookup_hash(secret)
    key.prefix = display_prefix(secret)
    key.last_rotated_at = timezone.now()
    key.save()
    return secret


def api_key_disable(*, key: ApiKey) -> None:
    key.is_active = False
    key.save(update_fields=["is_active"])


@transaction.atomic
def environment_keys_sync(*, secrets_from_env: list[str]) -> tuple[int, int]:
    """Store `GATEWAY_API_KEYS` as hashed rows; disable env keys no longer listed. Returns (added, disabled)."""
    wanted = {lookup_hash(s): s for s in secrets_from_env}
    existing = {k.lookup_hash: k for k in ApiKey.objects.filter(source=ApiKey.Source.ENVIRONMENT)}
    added = 0
    for digest, secret in wanted.items():
        key = existing.get(digest)
        if key is None:
            api_key_create(name=f"env-{display_prefix(secret)}", source=ApiKey.Source.ENVIRONMENT, secret=secret)
            added += 1
        elif not key.is_active:
            key.is_active = True
            key.save(update_fields=["is_active"])
    disabled = 0
    for digest, key in existing.items():
        if digest not in wanted and key.is_active:
            api_key_disable(key=key)
            disabled += 1
    return added, disabled


def first_key_ensure() -> str | None:
    """When no key exists at all, create one and return its secret (printed once by the caller)."""
    if ApiKey.objects.exists():
        return None
    _key, secret = api_key_create(name="first-key", source=ApiKey.Source.GENERATED)
    return secret
