"""Attribute admin changes to the signed-in operator ("admin:<username>")."""

from __future__ import annotations

from functools import wraps

from .context import Actor, acting_as


def admin_actor(request) -> Actor:
    return Actor.for_user("admin", request.user)


class AuditActorMixin:
    """ModelAdmin mixin: every view that can write (forms, actions, deletes) runs as the request's user."""

    def changeform_view(self, request, *args, **kwargs):
        with acting_as(admin_actor(request)):
            return super().changeform_view(request, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):
        with acting_as(admin_actor(request)):  # admin actions and list_editable run here
            return super().changelist_view(request, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        with acting_as(admin_actor(request)):
            return super().delete_view(request, *args, **kwargs)

    def audited_view(self, view):
        """Wrap a custom admin view: admin permission checks, then run as the request's user."""

        @wraps(view)
        def inner(request, *args, **kwargs):
            with acting_as(admin_actor(request)):
                return view(request, *args, **kwargs)

        return self.admin_site.admin_view(inner)
