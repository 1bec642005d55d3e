"""Every write to keys or teams bumps the keys version, so every process drops its key cache."""

from django.db.models.signals import post_delete, post_save

from models_registry import bus

from .models import ApiKey, Team


def _bump_keys(sender, **kwargs) -> None:
    if kwargs.get("raw"):
        return
    bus.bump("keys")


for _model in (ApiKey, Team):
    post_save.connect(_bump_keys, sender=_model, dispatch_uid=f"keys-save-{_model.__name__}")
    post_delete.connect(_bump_keys, sender=_model, dispatch_uid=f"keys-delete-{_model.__name__}")
