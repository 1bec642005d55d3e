"""Writing audit entries: field-level diffs with secrets masked.

`record_change` is the one way an entry is written. The signal handlers in `signals.py` call it for
every save and delete of an audited model; code that writes with `QuerySet.update()` (which sends no
signals) goes through `audited_update` instead.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from .context import Actor, current_actor
from .models import AuditEntry

MASK = "••••••"

# Field (or JSON key) names whose values never reach the log. Matched per "_"-separated word, so
# `default_max_tokens` stays visible while `auth_token` or `api_key` do not.
_SECRET_WORDS = {"secret", "secrets", "password", "passwd", "pepper", "token", "credential", "credentials",
                 "passphrase", "signature"}
_SECRET_NAMES = re.compile(
    r"(lookup_hash|private_key|key_material|key_content|api_key|apikey|access_key|secret_key|pass_phrase)", re.I
)
# Values that look like a gateway key or a PEM private key are masked wherever they appear.
_SECRET_VALUE = re.compile(r"sk-[A-Za-z0-9_\-]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----")

# Bookkeeping columns that change on every save and say nothing about the change itself.
_SKIPPED_FIELDS = {"updated_at"}


def is_secret_name(name: str) -> bool:
    name = str(name)
    if _SECRET_NAMES.search(name):
        return True
    return any(word in _SECRET_WORDS for word in re.split(r"[_\-\s.]+", name.lower()))


def _mask_value(value: Any) -> Any:
    """Mask secret-looking strings and secret-named keys inside JSON values (metadata, param_defaults)."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_name(k) and v not in (None, "") else _mask_value(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_value(v) for v in value]
    if isinstance(value, str) and _SECRET_VALUE.search(value):
        return MASK
    return value


def mask(name: str, value: Any) -> Any:
    if is_secret_name(name):
        return MASK if value not in (None, "") else value
    return _mask_value(value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def audited_fields(model: type[models.Model]) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if f.name not in _SKIPPED_FIELDS]


def snapshot(instance: models.Model, fields: list[str] | None = None) -> dict[str, Any]:
    """Field values of `instance` as JSON-ready data (foreign keys as their primary key)."""
    out = {}
    for field in audited_fields(type(instance)):
        if fields is not None and field.name not in fields and field.attname not in fields:
            continue
        out[field.name] = _jsonable(field.value_from_object(instance))
    return out


EMPTY = (None, "", [], {})


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list]:
    """{field: [before, after]} for fields that differ (an absent side counts as empty)."""
    changes = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new and not (old in EMPTY and new in EMPTY):
            changes[name] = [old, new]
    return changes


def masked(changes: dict[str, Any]) -> dict[str, Any]:
    """Secrets out of a {field: [before, after]} diff, on both sides."""
    out = {}
    for name, value in changes.items():
        if isinstance(value, list | tuple) and len(value) == 2:
            out[name] = [mask(name, value[0]), mask(name, value[1])]
        else:
            out[name] = mask(name, value)
    return out


def object_type(model: type[models.Model]) -> str:
    return model._meta.label_lower


def record_change(
    *,
    action: str,
    instance: models.Model | None = None,
    model: type[models.Model] | None = None,
    object_id: Any = None,
    object_repr: str = "",
    changes: dict | None = None,
    note: str = "",
    actor: Actor | None = None,
) -> AuditEntry:
    """Write one audit entry, in the caller's transaction (a rolled-back change leaves no entry).

    `changes` is {field: [before, after]}; secret fields and secret-looking values are masked here.
    """
    actor = actor or current_actor()
    if instance is not None:
        model = type(instance)
        object_id = instance.pk if object_id is None else object_id
        object_repr = object_repr or str(instance)
    return AuditEntry.objects.create(
        actor=actor.label[:200],
        channel=actor.channel,
        user_id=actor.user_id,
        action=action,
        object_type=object_type(model) if model is not None else "",
        object_id=str(object_id if object_id is not None else "")[:64],
        object_repr=str(object_repr)[:200],
        changes=masked(_jsonable(changes or {})),
        note=note[:300],
    )


def audited_update(queryset: models.QuerySet, *, note: str = "", **values: Any) -> int:
    """`queryset.update(**values)` that leaves one audit entry per row it changes.

    `update()` sends no signals, so this reads the affected rows first. Meant for the bulk edits of
    services and admin actions (a few hundred rows at most), not for usage-sized tables.
    """
    model = queryset.model
    names = list(values)
    rows = list(queryset)
    count = queryset.filter(pk__in=[r.pk for r in rows]).update(**values)
    actor = current_actor()
    for row in rows:
        before = snapshot(row, names)
        for name, value in values.items():
            setattr(row, name, value)
        changes = diff(before, snapshot(row, names))
        if changes:
            record_change(action=AuditEntry.Action.UPDATE, instance=row, model=model, changes=changes,
                          note=note, actor=actor)
    return count
