"""Authenticating `/v1` calls: secret → cached key principal.

Keys are read on every request and written rarely, so lookups are cached in process memory and the
whole cache is dropped when the keys version moves (see models_registry/bus.py).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from gateway_project.db import run_db
from models_registry import bus

from .keys import lookup_hash
from .limits import NO_LIMITS, Limits
from .models import ApiKey


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    id: int
    name: str
    prefix: str
    team_id: int | None
    team_name: str
    allowed_models: frozenset[str]  # empty: every model
    team_allowed_models: frozenset[str]
    metadata: dict
    expires_at: datetime | None
    digest: str
    previous_valid_until: datetime | None  # set when authenticated by a rotated-out secret
    limits: Limits = NO_LIMITS  # the key's own rate limits and budgets (usage/limits.py)
    team_limits: Limits = NO_LIMITS  # its team's, shared by every key of the team
    key_regions: frozenset[str] = frozenset()  # data residency (empty: any region)
    team_regions: frozenset[str] = frozenset()

    @property
    def has_limits(self) -> bool:
        return self.limits.any or self.team_limits.any

    @property
    def allowed_regions(self) -> frozenset[str]:
        """Regions both the key and its team allow (each empty list means any)."""
        key, team = self.key_regions, self.team_regions
        if key and team:
            return key & team or frozenset({"<none>"})  # disjoint lists allow nothing
        return key or team

    def may_use(self, model: str) -> bool:
        return _listed(model, self.allowed_models) and _listed(model, self.team_allowed_models)

    def is_valid_now(self) -> bool:
        now = timezone.now()
        if self.expires_at is not None and self.expires_at <= now:
            return False
        if self.previous_valid_until is not None and self.previous_valid_until <= now:
            return False
        return True


def _load_principal(digest: str) -> KeyPrincipal | None:
    from django.db.models import Q

    key = (
        ApiKey.objects.select_related("team")
        .filter(is_active=True)
        .filter(Q(lookup_hash=digest) | Q(previous_lookup_hash=digest))
        .first()
    )
    if key is None:
        return None
    # The index match already compared the digests; compare again in constant time regardless.
    by_previous = not hmac.compare_digest(key.lookup_hash, digest)
    if by_previous and not hmac.compare_digest(key.previous_lookup_hash, digest):
        return None
    team = key.team
    metadata = {**(team.metadata if team else {}), **(key.metadata or {})}
    return KeyPrincipal(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        team_id=team.id if team else None,
        team_name=team.name if team else "",
        allowed_models=frozenset(key.allowed_models or ()),
        team_allowed_models=frozenset(team.allowed_models or ()) if team else frozenset(),
        metadata=metadata,
        expires_at=key.expires_at,
        digest=digest,
        previous_valid_until=key.previous_valid_until if by_previous else None,
        limits=Limits.of(key),
        team_limits=Limits.of(team) if team else NO_LIMITS,
        key_regions=frozenset(key.allowed_regions or ()),
        team_regions=frozenset(team.allowed_regions or ()) if team else frozenset(),
    )


# digest → principal (or None for an unknown secret), dropped whole on every keys version.
_principals = bus.VersionedValue("keys", dict)


def _load_principal_by_name(name: str) -> KeyPrincipal | None:
    key = ApiKey.objects.filter(name=name, is_active=True).order_by("id").first()
    return _load_principal(key.lookup_hash) if key else None


async def principal_by_name(name: str) -> KeyPrincipal | None:
    """The named key's principal (keyless clients mapped onto it by GATEWAY_ANONYMOUS_KEY)."""
    cache: dict = await _principals.get()
    slot = f"name:{name}"
    if slot not in cache:
        cache[slot] = await run_db(_load_principal_by_name, name)
    principal = cache[slot]
    return principal if principal is not None and principal.is_valid_now() else None


async def authenticate(secret: str) -> KeyPrincipal | None:
    if not secret:
        return None
    digest = lookup_hash(secret)
    cache: dict = await _principals.get()
    try:
        principal = cache[digest]
    except KeyError:
        principal = await run_db(_load_principal, digest)
        if len(cache) > 100_000:  # bound memory against floods of random keys
            cache.clear()
        cache[digest] = principal
    if principal is None or not principal.is_valid_now():
        return None
    return principal


def _listed(model: str, allowlist) -> bool:
    """An empty allowlist allows everything; `ns/*` in it allows every model of namespace `ns`."""
    if not allowlist or model in allowlist:
        return True
    namespace, slash, _rest = model.partition("/")
    return bool(slash) and f"{namespace}/*" in allowlist
