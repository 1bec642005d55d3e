"""Read-side queries over usage records."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, Sum

from .models import UsageRecord


def key_usage_summary(*, key_id: int, start: datetime | None = None, end: datetime | None = None) -> dict:
    """What GET /v1/usage returns for one key: every record counts as a request, whatever its status."""
    qs = UsageRecord.objects.for_key(key_id).between(start, end)
    sums = {
        "requests": Count("id"),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        # Before "total_tokens": once that alias exists, Sum("total_tokens") would name the aggregate.
        "estimated_tokens": Sum("total_tokens", filter=Q(usage_source=UsageRecord.Source.ESTIMATED)),
        "total_tokens": Sum("total_tokens"),
        "cost_usd": Sum("cost_usd"),
    }
    totals = qs.aggregate(**sums)
    by_status = {str(row["status"]): row["n"] for row in qs.values("status").annotate(n=Count("id"))}
    by_model = [
        {**row, "cost_usd": float(row["cost_usd"] or 0)}
        for row in qs.values("public_model")
        .annotate(
            requests=Count("id"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            total_tokens=Sum("total_tokens"),
            cost_usd=Sum("cost_usd"),
        )
        .order_by("-total_tokens", "public_model")
    ]
    return {
        "totals": {k: float(v or 0) if isinstance(v, Decimal) or k == "cost_usd" else int(v or 0)
                   for k, v in totals.items()},
        "by_status": by_status,
        "by_model": by_model,
    }
