"""The gateway's operational views on the Deployment admin: probes and per-deployment state.

They need api/ (the upstream path, the routing state) and models_registry must not import api, so this
module extends the Deployment admin that models_registry/admin.py registers (the admin autodiscovers
`api.admin` after `models_registry.admin`: INSTALLED_APPS order) rather than the other way round.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path

from models_registry.admin import DeploymentAdmin
from models_registry.models import Deployment

from . import deployment_state, probes


class DeploymentOpsAdmin(DeploymentAdmin):
    change_list_template = "admin/models_registry/deployment/change_list.html"
    actions = (*DeploymentAdmin.actions, "probe")

    @admin.action(description="Probe selected deployments", permissions=["change"])
    def probe(self, request, queryset):
        """One tiny request to each (api/probes.py): not billed to any key, breakers left alone."""
        specs = probes.deployments_to_probe(ids=list(queryset.values_list("pk", flat=True)))
        for r in probes.probe_many_sync(specs):
            if r.ok:
                self.message_user(request, f"{r.deployment} ({r.call}, {r.region or '-'}): ok in {r.latency_ms} ms",
                                  messages.SUCCESS)
            else:
                status = f"HTTP {r.status}" if r.status else "no answer"
                self.message_user(request, f"{r.deployment} ({r.call}, {r.region or '-'}): failed, {status}, "
                                           f"after {r.latency_ms} ms: {r.error}", messages.ERROR)

    def get_urls(self):
        return [
            path("state/", self.admin_site.admin_view(self.state_view), name="models_registry_deployment_state"),
            *super().get_urls(),
        ]

    def state_view(self, request):
        """Breakers, error rates, latency and load of every deployment, as this process sees them."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        deployments = list(Deployment.objects.order_by("-enabled", "name").only("name", "kind", "region", "enabled"))
        shared_read = _refresh_shared([d.name for d in deployments])
        for d in deployments:
            d.region = d.region or ("" if d.kind == "openai_compatible" else settings.OCI_REGION)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Deployment state",
            "rows": deployment_state.snapshot(deployments),
            "redis": bool(settings.REDIS_URL),
            "shared_read": shared_read,
            "window_s": settings.BREAKER_WINDOW_S,
            "failures": settings.BREAKER_FAILURES,
            "error_rate": int(settings.BREAKER_ERROR_RATE * 100),
            "min_calls": settings.BREAKER_MIN_CALLS,
            "cooldown_s": settings.BREAKER_COOLDOWN_S,
        }
        return TemplateResponse(request, "admin/models_registry/deployment/state.html", context)


def _refresh_shared(names: list[str]) -> bool:
    """Read other processes' breaker openings from Redis, when configured; True when they were read.

    Only from inside the ASGI server, on its event loop: routing's Redis client belongs to that loop.
    """
    if not settings.REDIS_URL or not names:
        return False
    from asgiref.sync import SyncToAsync, async_to_sync

    from . import routing

    main_loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if main_loop is None or not main_loop.is_running():
        return False
    async_to_sync(routing.refresh_shared)(names)
    return True


admin.site.unregister(Deployment)
admin.site.register(Deployment, DeploymentOpsAdmin)
