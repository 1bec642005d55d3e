"""Every admin save, delete and bulk edit of the catalogue bumps the catalog version."""

from django.db.models.signals import post_delete, post_save

from . import bus
from .models import CredentialProfile, Deployment, PublicModel, Route


def _bump_catalog(sender, **kwargs) -> None:
    if kwargs.get("raw"):
        return  # loaddata
    bus.bump("catalog")


for _model in (CredentialProfile, Deployment, PublicModel, Route):
    post_save.connect(_bump_catalog, sender=_model, dispatch_uid=f"catalog-save-{_model.__name__}")
    post_delete.connect(_bump_catalog, sender=_model, dispatch_uid=f"catalog-delete-{_model.__name__}")
