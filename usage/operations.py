"""Operator-side writes to keys and teams, shared by the admin and the management API.

Creation, rotation and disabling live in `keys.py`; this module adds the edits an operator makes
afterwards. Each write is a plain `save()`, so the keys cache version is bumped and the change is
audited by the model signals.
"""

from __future__ import annotations

import difflib
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from models_registry.models import PublicModel

from .models import LIMIT_FIELDS, ApiKey

KEY_EDITABLE_FIELDS = ("name", "team", "owner", "allowed_models", "allowed_regions", "metadata", "expires_at",
                       "is_active", *LIMIT_FIELDS)


def validate_regions(regions, *, field: str = "allowed_regions") -> list[str]:
    """Data-residency region lists: OCI region identifiers such as eu-frankfurt-1."""
    from models_registry.validation import validate_region

    if regions is None:
        return []
    if not isinstance(regions, list | tuple):
        raise ValidationError({field: "Give a list of region identifiers such as [\"eu-frankfurt-1\"]."})
    regions = list(regions)
    for region in regions:
        if not isinstance(region, str) or not region:
            raise ValidationError({field: "Give region identifiers such as eu-frankfurt-1."})
        try:
            validate_region(region)
        except ValidationError as exc:
            raise ValidationError({field: exc.messages[0]}) from None
    return regions


def validate_model_names(names, *, field: str = "allowed_models") -> list[str]:
    """A clean list of known public model names, or a ValidationError naming the unknown ones."""
    if names in (None, ""):
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValidationError({field: 'Give a list of public model names, e.g. ["llama-3.3", "embed-v4"], '
                                      "or leave it empty to allow every model."})
    cleaned = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    known = set(PublicModel.objects.filter(name__in=cleaned).values_list("name", flat=True))
    unknown = [n for n in cleaned if n not in known]
    if unknown:
        every = list(PublicModel.objects.values_list("name", flat=True))
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, every, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValidationError({field: f"Unknown public model name(s): {', '.join(hints)}. Add the model to the "
                                      "catalogue first, or fix the spelling."})
    return cleaned


def validate_metadata(value, *, field: str = "metadata") -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValidationError({field: 'Give a JSON object of labels, e.g. {"cost_centre": "4711"}.'})
    return value


def validate_future(value: datetime | None, *, field: str = "expires_at") -> datetime | None:
    if value is not None and value <= timezone.now():
        raise ValidationError({field: "This date is in the past: pick a later one, or leave it blank for a key "
                                      "that never expires."})
    return value


@transaction.atomic
def api_key_update(*, key: ApiKey, **changes) -> ApiKey:
    """Change what an operator may change on a key (never its secret: see `api_key_rotate`)."""
    unknown = set(changes) - set(KEY_EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    if "allowed_models" in changes:
        changes["allowed_models"] = validate_model_names(changes["allowed_models"])
    if "metadata" in changes:
        changes["metadata"] = validate_metadata(changes["metadata"])
    if "allowed_regions" in changes:
        changes["allowed_regions"] = validate_regions(changes["allowed_regions"])
    if changes.get("expires_at") is not None and changes["expires_at"] != key.expires_at:
        validate_future(changes["expires_at"])
    changes = {name: value for name, value in changes.items() if getattr(key, name) != value}
    if not changes:
        return key
    for name, value in changes.items():
        setattr(key, name, value)
    key.full_clean(exclude=["lookup_hash", "prefix"], validate_unique=False)
    key.save()
    return key


def api_key_extend(*, key: ApiKey, until: datetime) -> ApiKey:
    """Move a key's expiry to `until` (which must be later than now)."""
    validate_future(until)
    key.expires_at = until
    key.save(update_fields=["expires_at"])
    return key


def api_key_enable(*, key: ApiKey) -> None:
    key.is_active = True
    key.save(update_fields=["is_active"])
