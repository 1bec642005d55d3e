"""Audit every save and delete of the catalogue, keys and teams, from any write path.

pre_save reads the row as stored (one primary-key query, writes are rare), post_save compares it with
what was written. Both run inside the writer's transaction, so the entry commits or rolls back with
the change it describes.
"""

from __future__ import annotations

from django.apps import apps
from django.db.models.signals import post_delete, post_save, pre_save

from .models import AuditEntry
from .services import diff, record_change, snapshot

AUDITED_MODELS = (
    "models_registry.CredentialProfile",
    "models_registry.Deployment",
    "models_registry.PublicModel",
    "models_registry.Route",
    "usage.ApiKey",
    "usage.Team",
)

_BEFORE = "_audit_before"


def _pre_save(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    if raw or instance.pk is None or instance._state.adding:
        return
    stored = sender._base_manager.filter(pk=instance.pk).first()
    if stored is not None:
        setattr(instance, _BEFORE, snapshot(stored, list(update_fields) if update_fields else None))


def _post_save(sender, instance, created, raw=False, update_fields=None, **kwargs) -> None:
    if raw:
        return
    before = instance.__dict__.pop(_BEFORE, None)
    if created or before is None:
        record_change(action=AuditEntry.Action.CREATE, instance=instance, changes=diff({}, snapshot(instance)))
        return
    changes = diff(before, snapshot(instance, list(update_fields) if update_fields else None))
    if changes:  # a save that changed nothing (admin "Save" on an untouched form) is not news
        record_change(action=AuditEntry.Action.UPDATE, instance=instance, changes=changes)


def _post_delete(sender, instance, **kwargs) -> None:
    record_change(action=AuditEntry.Action.DELETE, instance=instance, changes=diff(snapshot(instance), {}))


def connect() -> None:
    for label in AUDITED_MODELS:
        model = apps.get_model(label)
        uid = f"audit-{label}"
        pre_save.connect(_pre_save, sender=model, dispatch_uid=f"{uid}-pre")
        post_save.connect(_post_save, sender=model, dispatch_uid=f"{uid}-post")
        post_delete.connect(_post_delete, sender=model, dispatch_uid=f"{uid}-delete")
