"""Operational pages of the full stack (not under /v1)."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import JsonResponse

from .connectivity import probe_all


async def test_oci(request):
    """GET /test-oci: per profile and region, ok or why not. Details (messages) for staff only."""
    results = await sync_to_async(probe_all, thread_sensitive=False)()
    user = await request.auser()
    staff = bool(user and user.is_active and user.is_staff)
    ok = all(r.status == "ok" for r in results)
    return JsonResponse(
        {"ok": ok, "checks": [r.as_dict(with_detail=staff) for r in results]}, status=200 if ok else 503
    )
