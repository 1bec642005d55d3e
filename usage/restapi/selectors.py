"""Usage reads for the management API: filtered records and simple rollups, aggregated in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..models import ApiKey, Team, UsageRecord

DEFAULT_WINDOW = timedelta(days=30)
MAX_GROUPS = 1000


def usage_records(*, start: datetime | None = None, end: datetime | None = None, key: int | None = None,
                  team: int | None = None, model: str | None = None, status: int | None = None) -> QuerySet:
    qs = UsageRecord.objects.between(start, end)
    if key is not None:
        qs = qs.for_key(key)
    if team is not None:
        qs = qs.filter(team_id=team)
    if model:
        qs = qs.filter(public_model=model)
    if status is not None:
        qs = qs.filter(status=status)
    return qs


def usage_rollup(*, group_by: str = "day", start: datetime | None = None, end: datetime | None = None,
                 key: int | None = None, team: int | None = None, model: str | None = None,
                 status: int | None = None) -> dict:
    """Totals per key, team, public model or UTC day over [start, end) (default: the last 30 days)."""
    end = end or timezone.now()
    start = start or end - DEFAULT_WINDOW
    qs = usage_records(start=start, end=end, key=key, team=team, model=model, status=status)
    column = {"key": "key_id", "team": "team_id", "model": "public_model", "day": "day"}[group_by]
    if group_by == "day":
        qs = qs.annotate(day=TruncDate("created_at", tzinfo=UTC))
    rows = (
        qs.values(column)
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=Q(status__gte=400)),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            total_tokens=Sum("total_tokens"),
            cost_usd=Sum("cost_usd"),
        )
        .order_by(column if group_by == "day" else "-total_tokens", column)[:MAX_GROUPS]
    )
    rows = list(rows)
    labels: dict = {}
    if group_by in ("key", "team"):
        model_cls = ApiKey if group_by == "key" else Team
        ids = [r[column] for r in rows if r[column] is not None]
        labels = dict(model_cls.objects.filter(pk__in=ids).values_list("pk", "name"))
    out = []
    for r in rows:
        group = r[column]
        group_text = group.isoformat() if hasattr(group, "isoformat") else ("" if group is None else str(group))
        out.append({
            "group": group_text,
            "label": labels.get(group, group_text) if group is not None else "(none)",
            "requests": r["requests"],
            "errors": r["errors"],
            "prompt_tokens": r["prompt_tokens"] or 0,
            "completion_tokens": r["completion_tokens"] or 0,
            "total_tokens": r["total_tokens"] or 0,
            "cost_usd": float(r["cost_usd"] or 0),
        })
    return {"group_by": group_by, "start": start, "end": end, "rows": out}
