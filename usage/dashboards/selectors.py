"""Dashboard reads. Totals come from the rollups only (hourly or daily, see windows.py); the raw usage
table is read only through its indexes and with a LIMIT: latency samples, recent errors, the live feed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from ..limits import period_bounds
from ..models import (
    ApiKey,
    Team,
    UsageDailyKeyRollup,
    UsageDailyModelRollup,
    UsageDailyRollup,
    UsageRecord,
    UsageRollup,
)
from .windows import Window

SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "latency_ms_sum",
        "ttft_ms_sum", "ttft_count")
TOP = 20
SAMPLE = 2000  # latest requests of the window that latency percentiles are computed from
ERROR_SCAN = 5000  # recent errors are looked for among a key's latest requests only


@dataclass(frozen=True, slots=True)
class Filters:
    key_id: int | None = None
    team_id: int | None = None
    model: str = ""
    region: str = ""

    def query(self) -> dict[str, str]:
        out = {"key": self.key_id, "team": self.team_id, "model": self.model, "region": self.region}
        return {k: str(v) for k, v in out.items() if v not in (None, "")}

    @property
    def any(self) -> bool:
        return bool(self.query())


@dataclass(slots=True)
class Totals:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_ms_sum: int = 0
    ttft_ms_sum: int = 0
    ttft_count: int = 0

    @classmethod
    def of(cls, row: dict) -> Totals:
        """Totals from an aggregate row whose sums are named s_<field> (NULL sums count as 0)."""
        return cls(*(row[f"s_{name}"] or 0 for name in SUMS))

    def add(self, other: Totals) -> Totals:
        for name in SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def avg_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.requests if self.requests else None

    @property
    def avg_ttft_ms(self) -> float | None:
        return self.ttft_ms_sum / self.ttft_count if self.ttft_count else None


@dataclass(slots=True)
class Group:
    """One row of a breakdown: a key, team, model, region or time bucket with its totals."""

    id: object
    label: str
    totals: Totals = field(default_factory=Totals)
    team_id: int | None = None


# --- rollup reads ------------------------------------------------------------------------------------------


def _filtered(qs: QuerySet, filters: Filters) -> QuerySet:
    if filters.key_id is not None:
        qs = qs.filter(key_id=filters.key_id)
    if filters.team_id is not None:
        qs = qs.filter(team_id=filters.team_id)
    if filters.model:
        qs = qs.filter(public_model=filters.model)
    if filters.region:
        qs = qs.filter(region=filters.region)
    return qs


def _rollups(window: Window, filters: Filters) -> tuple[QuerySet, QuerySet, str]:
    """(rows for series, models and regions; rows for ranking keys and teams; the time column).

    Hour windows read the hourly rollups. Day windows read the narrowest daily table that still holds
    the filtered dimensions: all keys together per model and region for the series, per key for the
    ranking; the full key × model × region table only when a filter needs it (a key's or team's rows
    are found through its index).
    """
    if window.hourly:
        qs = _filtered(UsageRollup.objects.filter(bucket__gte=window.start, bucket__lt=window.end), filters)
        return qs, qs, "bucket"
    days = {"day__gte": window.first_day, "day__lte": window.last_day}
    detail = _filtered(UsageDailyRollup.objects.filter(**days), filters)
    overview = detail
    if filters.key_id is None and filters.team_id is None:
        overview = _filtered(UsageDailyModelRollup.objects.filter(**days), filters)
    ranking = detail if filters.any else UsageDailyKeyRollup.objects.filter(**days)
    return overview, ranking, "day"


def _sums() -> dict:
    return {f"s_{name}": Sum(name) for name in SUMS}


def _bucket_start(value) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


@dataclass(slots=True)
class Report:
    window: Window
    filters: Filters
    totals: Totals
    series: list[Group]
    models: list[Group]
    regions: list[Group]
    keys: list[Group]  # top keys by tokens
    teams: list[Group]  # top teams by tokens
    key_count: int
    team_count: int


def _ranked(groups, n: int | None = None) -> list[Group]:
    out = sorted(groups, key=lambda g: (-g.totals.total_tokens, -g.totals.requests, str(g.id)))
    return out[:n] if n else out


def usage_report(*, window: Window, filters: Filters, top: int = TOP) -> Report:
    """Everything the staff dashboard shows for a window, in a few grouped reads of the rollups.

    Keys and teams are ranked on two sums only (tokens, requests), then the full totals are read for the
    top ones alone, through their (key_id, day) and (team_id, day) indexes.
    """
    qs, ranking, time_field = _rollups(window, filters)
    series = {b: Group(b, "") for b in window.buckets()}
    for row in qs.values(time_field).annotate(**_sums()).order_by():
        bucket = _bucket_start(row[time_field])
        series.setdefault(bucket, Group(bucket, "")).totals.add(Totals.of(row))
    totals = Totals()
    for g in series.values():
        totals.add(g.totals)

    models: dict[str, Group] = {}
    regions: dict[str, Group] = {}
    for row in qs.values("public_model", "region").annotate(**_sums()).order_by():
        sums = Totals.of(row)
        model, region = row["public_model"], row["region"]
        models.setdefault(model, Group(model, model or "(none)")).totals.add(sums)
        regions.setdefault(region, Group(region, region or "(none)")).totals.add(sums)

    # Rank on two sums only: a small hash aggregate even over every key of 90 days.
    lean: dict[int, list] = {}
    team_lean: dict[int, list] = {}
    for key_id, team_id, t, r in (ranking.values_list("key_id", "team_id")
                                  .annotate(t=Sum("total_tokens"), r=Sum("requests")).order_by()):
        for bucket, ident in ((lean, key_id), (team_lean, team_id or 0)):
            entry = bucket.setdefault(ident, [0, 0])
            entry[0] += t or 0
            entry[1] += r or 0

    def best(totals: dict[int, list]) -> list[int]:
        return sorted(totals, key=lambda i: (-totals[i][0], -totals[i][1], i))[:top]

    top_ids, top_team_ids = best(lean), best(team_lean)
    keys: dict[int, Group] = {}
    for row in ranking.filter(key_id__in=top_ids).values("key_id", "team_id").annotate(**_sums()).order_by():
        key = keys.setdefault(row["key_id"], Group(row["key_id"], "", team_id=row["team_id"] or None))
        key.totals.add(Totals.of(row))
    teams = {row["team_id"] or 0: Group(row["team_id"] or 0, "", Totals.of(row))
             for row in ranking.filter(team_id__in=top_team_ids).values("team_id").annotate(**_sums()).order_by()}

    top_keys = [keys[i] for i in top_ids if i in keys]
    top_teams = [teams[i] for i in top_team_ids if i in teams]
    key_names = dict(ApiKey.objects.filter(pk__in=top_ids).values_list("pk", "name"))
    team_names = dict(Team.objects.filter(pk__in=[g.id for g in top_teams if g.id]).values_list("pk", "name"))
    for g in top_keys:
        g.label = key_names.get(g.id, f"key #{g.id} (deleted)")
    for g in top_teams:
        g.label = team_names.get(g.id, f"team #{g.id} (deleted)") if g.id else "(no team)"
    return Report(
        window=window, filters=filters, totals=totals, series=sorted(series.values(), key=lambda g: g.id),
        models=_ranked(models.values()), regions=_ranked(regions.values()), keys=top_keys, teams=top_teams,
        key_count=len(lean), team_count=len(team_lean),
    )


# --- latency percentiles: a bounded sample of the latest raw rows, read by index -----------------------


@dataclass(slots=True)
class Percentiles:
    sample: int  # requests the figures come from
    latency: dict[str, int | None]
    ttft: dict[str, int | None]


def _percentile(sorted_values: list[int], p: float) -> int | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def latency_percentiles(*, window: Window, filters: Filters, sample: int = SAMPLE) -> Percentiles:
    """p50/p95/p99 of latency and TTFT over the latest `sample` requests of the window.

    The rows are read newest first through the (key, created_at), (team, created_at) or created_at index
    and stop after `sample` rows, so the cost does not grow with the table. A model or region filter is
    applied within that sample.
    """
    qs = UsageRecord.objects.filter(created_at__gte=window.start, created_at__lt=window.end)
    if filters.key_id is not None:
        qs = qs.filter(key_id=filters.key_id)
    elif filters.team_id is not None:
        qs = qs.filter(team_id=filters.team_id)
    rows = list(qs.order_by("-created_at").values_list("latency_ms", "ttft_ms", "public_model", "region")[:sample])
    if filters.model:
        rows = [r for r in rows if r[2] == filters.model]
    if filters.region:
        rows = [r for r in rows if r[3] == filters.region]
    latency = sorted(r[0] for r in rows)
    ttft = sorted(r[1] for r in rows if r[1] is not None)
    points = {"p50": 50, "p95": 95, "p99": 99}
    return Percentiles(
        sample=len(rows),
        latency={k: _percentile(latency, p) for k, p in points.items()},
        ttft={k: _percentile(ttft, p) for k, p in points.items()},
    )


def recent_errors(*, key_id: int, limit: int = 20, scan: int = ERROR_SCAN) -> list[UsageRecord]:
    """The key's latest failed requests among its latest `scan` requests (bounded, by index).

    Two plain reads rather than one `id IN (subquery)`, whose plan could walk the whole created_at
    index of a big table looking for errors of a key that has none.
    """
    latest = (UsageRecord.objects.filter(key_id=key_id).order_by("-created_at")
              .values_list("id", "status")[:scan])
    failed = [pk for pk, status in latest if status >= 400][:limit]
    return list(
        UsageRecord.objects.filter(id__in=failed).order_by("-created_at")
        .only("request_id", "created_at", "public_model", "region", "status", "error_type", "latency_ms")
    )


# --- budgets: the current period's usage from the daily rollups ------------------------------------------


@dataclass(slots=True)
class Budget:
    scope: str  # key | team
    scope_id: int
    name: str
    kind: str  # tokens | usd
    limit: Decimal
    used: Decimal
    period: str
    start: datetime
    resets_at: datetime
    warn_percent: int | None = None
    daily: list[tuple[date, Decimal]] = field(default_factory=list)  # filled for burn-down charts

    @property
    def remaining(self) -> Decimal:
        return max(self.limit - self.used, Decimal(0))

    @property
    def percent(self) -> float:
        return float(self.used / self.limit * 100) if self.limit else (100.0 if self.used else 0.0)

    def projected_exhaustion(self, now: datetime) -> datetime | None:
        """When the budget runs out at the period's average pace so far; None if not before the reset."""
        if self.used >= self.limit:
            return now
        elapsed = (now - self.start).total_seconds()
        if elapsed <= 0 or self.used <= 0:
            return None
        seconds = float(self.limit - self.used) * elapsed / float(self.used)
        when = now + timedelta(seconds=seconds)
        return when if when < self.resets_at else None


def _budget_specs(obj, scope: str, now: datetime) -> list[Budget]:
    specs = []
    for kind, limit, period in (("tokens", obj.token_budget, obj.token_budget_period),
                                ("usd", obj.usd_budget, obj.usd_budget_period)):
        if limit is None:
            continue
        start, end, _tag = period_bounds(period or "month", now)
        specs.append(Budget(scope, obj.pk, obj.name, kind, Decimal(limit), Decimal(0), period or "month", start, end,
                            obj.budget_warn_percent))
    return specs


def budgets(*, keys: list[ApiKey] | None = None, teams: list[Team] | None = None, now: datetime | None = None,
            with_daily: bool = False) -> list[Budget]:
    """Budget state of these keys and teams: used in the current period (day, week or month, UTC).

    One grouped read of the per-key daily rollups per scope, with one conditional sum per period kind, so
    the cost depends on the number of budgeted keys and days, not on their traffic.
    """
    now = now or datetime.now(UTC)
    out: list[Budget] = []
    for scope, objs, column in (("key", keys or [], "key_id"), ("team", teams or [], "team_id")):
        specs = [b for obj in objs for b in _budget_specs(obj, scope, now)]
        if not specs:
            continue
        earliest = min(b.start for b in specs).date()
        starts = {b.period: b.start.date() for b in specs}
        aggregates = {}
        for period, start in starts.items():
            aggregates[f"tok_{period}"] = Sum("total_tokens", filter=Q(day__gte=start))
            aggregates[f"usd_{period}"] = Sum("cost_usd", filter=Q(day__gte=start))
        ids = sorted({b.scope_id for b in specs})
        # The per-key daily table: a key's or a team's total per day, whatever the model or region.
        rows = (UsageDailyKeyRollup.objects.filter(**{f"{column}__in": ids}, day__gte=earliest)
                .values(column).annotate(**aggregates).order_by())
        used = {row[column]: row for row in rows}
        for b in specs:
            row = used.get(b.scope_id, {})
            b.used = Decimal(row.get(f"{'tok' if b.kind == 'tokens' else 'usd'}_{b.period}") or 0)
        if with_daily:
            daily = defaultdict(dict)
            field_sums = {"t": Sum("total_tokens"), "c": Sum("cost_usd")}
            for row in (UsageDailyKeyRollup.objects.filter(**{f"{column}__in": ids}, day__gte=earliest)
                        .values(column, "day").annotate(**field_sums).order_by()):
                daily[row[column]][row["day"]] = row
            for b in specs:
                per_day = daily.get(b.scope_id, {})
                d, last = b.start.date(), min(now.date(), (b.resets_at - timedelta(days=1)).date())
                while d <= last:
                    row = per_day.get(d, {})
                    b.daily.append((d, Decimal((row.get("t") if b.kind == "tokens" else row.get("c")) or 0)))
                    d += timedelta(days=1)
        out.extend(specs)
    return out


def budget_overview(*, filters: Filters, now: datetime | None = None, top: int = TOP) -> list[Budget]:
    """The budgets closest to running out among keys and teams that have one (within the filters)."""
    has_budget = Q(token_budget__isnull=False) | Q(usd_budget__isnull=False)
    budget_fields = ("pk", "name", "token_budget", "token_budget_period", "usd_budget", "usd_budget_period",
                     "budget_warn_percent")
    keys = ApiKey.objects.filter(has_budget, is_active=True).only(*budget_fields)
    teams = Team.objects.filter(has_budget).only(*budget_fields)
    if filters.key_id is not None:
        keys = keys.filter(pk=filters.key_id)
        teams = teams.filter(keys__pk=filters.key_id)
    if filters.team_id is not None:
        keys = keys.filter(team_id=filters.team_id)
        teams = teams.filter(pk=filters.team_id)
    single = filters.key_id is not None or filters.team_id is not None
    result = budgets(keys=list(keys), teams=list(teams), now=now, with_daily=single)
    return sorted(result, key=lambda b: (-b.percent, b.scope, b.name))[:top]


# --- choices for the filter form --------------------------------------------------------------------------


def filter_choices() -> dict:
    """Teams, models and regions to filter by: from the (small) team table and the catalogue."""
    from models_registry.models import Deployment, PublicModel

    return {
        "teams": list(Team.objects.order_by("name").values_list("pk", "name")[:500]),
        "models": list(PublicModel.objects.order_by("name").values_list("name", flat=True)[:500]),
        "regions": sorted({r for r in Deployment.objects.values_list("region", flat=True).distinct() if r}),
    }
