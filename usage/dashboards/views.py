"""Usage dashboards: the staff overview, a key's own page, CSV exports and the polling feed.

Staff sign in through the admin (session). A key holder opens /me/, pastes the key into a form (POST,
never a URL) and the page then lives on the session, re-checked against the key on every request.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..auth import _load_principal
from ..keys import lookup_hash
from ..models import ApiKey, UsageRecord
from . import charts, feed, signin_throttle
from .selectors import (
    Filters,
    budget_overview,
    budgets,
    filter_choices,
    latency_percentiles,
    recent_errors,
    usage_report,
)
from .tables import Table, budget_table, percentile_table, report_tables
from .windows import PRESETS, WindowError, parse_window

SESSION_DIGEST = "dashboards_key_digest"
POLL_LIMIT = 100


class BadQuery(ValueError):
    pass


def _int(params, name: str) -> int | None:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise BadQuery(f"{name}: expected a number, got {value[:20]!r}")
    return int(value)


def _filters(params) -> Filters:
    model, region = (params.get("model") or "").strip(), (params.get("region") or "").strip()
    if len(model) > 200 or len(region) > 40:
        raise BadQuery("model or region: too long")
    return Filters(key_id=_int(params, "key"), team_id=_int(params, "team"), model=model, region=region)


def _csv(table: Table, filename: str) -> HttpResponse:
    response = HttpResponse(table.csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def _export(request, tables: list[Table], prefix: str) -> HttpResponse | None:
    slug = request.GET.get("export")
    if not slug:
        return None
    for table in tables:
        if table.slug == slug:
            return _csv(table, f"{prefix}-{slug}")
    return HttpResponseBadRequest(f"export: no table named {slug[:30]!r}")


def _series_charts(report) -> dict:
    xs = [g.id for g in report.series]
    hourly = report.window.hourly
    return {
        "tokens": charts.line_chart(xs, [("prompt", [g.totals.prompt_tokens for g in report.series]),
                                         ("completion", [g.totals.completion_tokens for g in report.series])],
                                    title="Tokens over time", hourly=hourly, area=False),
        "requests": charts.line_chart(xs, [("requests", [g.totals.requests for g in report.series])],
                                      title="Requests over time", hourly=hourly),
        "cost": charts.line_chart(xs, [("cost (USD)", [g.totals.cost_usd for g in report.series])],
                                  title="Cost over time (USD)", hourly=hourly),
        "errors": charts.line_chart(xs, [("error rate %", [g.totals.error_rate * 100 for g in report.series])],
                                    title="Error rate over time (%)", hourly=hourly),
    }


def _window_context(request, window, filters: Filters) -> dict:
    base = {**filters.query()}
    return {
        "window": window,
        "presets": [(p, "?" + urlencode({**base, "range": p})) for p in PRESETS],
        "export_query": urlencode({**window.query(), **filters.query()}),
        "now": datetime.now(UTC),
    }


# --- staff ---------------------------------------------------------------------------------------------


@never_cache
@staff_member_required
@require_GET
def staff_dashboard(request):
    try:
        window, filters = parse_window(request.GET), _filters(request.GET)
    except (WindowError, BadQuery) as exc:
        return render(request, "dashboards/error.html", {"message": str(exc)}, status=400)
    report = usage_report(window=window, filters=filters)
    tables = report_tables(report)
    now = datetime.now(UTC)
    budget_items = budget_overview(filters=filters, now=now)
    tables.append(budget_table(budget_items, now=now))
    tables.append(percentile_table(latency_percentiles(window=window, filters=filters)))
    exported = _export(request, tables, "usage")
    if exported is not None:
        return exported
    by_slug = {t.slug: t for t in tables}
    burn_charts = [
        (f"{b.scope} {b.name}: {'tokens' if b.kind == 'tokens' else 'USD'}",
         charts.burn_down_chart(b.daily, limit=b.limit, period_days=(b.resets_at - b.start).days,
                                title=f"Budget burn-down of {b.scope} {b.name}"))
        for b in budget_items if b.daily
    ][:4]
    key_filter_name = ""
    if filters.key_id is not None:
        key_filter_name = ApiKey.objects.filter(pk=filters.key_id).values_list("name", flat=True).first() or ""
    context = {
        **_window_context(request, window, filters),
        "title": "Usage dashboard",
        "report": report,
        "filters": filters,
        "key_filter_name": key_filter_name,
        "choices": filter_choices(),
        "tables": by_slug,
        "charts": _series_charts(report),
        "model_bars": charts.bar_chart([(g.label, g.totals.total_tokens) for g in report.models],
                                       title="Tokens by model"),
        "key_bars": charts.bar_chart([(g.label, g.totals.total_tokens) for g in report.keys[:10]],
                                     title="Top keys by tokens"),
        "burn_charts": burn_charts,
        "live_mode": feed.live_mode(),
        "ws_path": "/ws/dashboards/usage/",
        "poll_url": reverse("dashboards:feed"),
        "feed_token": "",
    }
    return render(request, "dashboards/staff.html", context)


@never_cache
@staff_member_required
@require_GET
def staff_key_page(request, key_id: int):
    key = get_object_or_404(ApiKey.objects.select_related("team"), pk=key_id)
    return _key_page(request, key, staff=True)


def _records_after(qs, after: int | None) -> list[dict]:
    if after is None:
        rows = list(qs.order_by("-created_at")[:20])[::-1]
    else:
        # Only recent rows can be new: the time bound keeps the index range short.
        recent = datetime.now(UTC) - timedelta(minutes=10)
        rows = list(qs.filter(id__gt=after, created_at__gte=recent).order_by("id")[:POLL_LIMIT])
    return [feed.event_payload(r) | {"id": r.id} for r in rows]


def _poll_response(events: list[dict], after: int | None) -> JsonResponse:
    cursor = max([e["id"] for e in events], default=after or 0)
    return JsonResponse({"events": events, "cursor": cursor})


@never_cache
@staff_member_required
@require_GET
def staff_feed_poll(request):
    try:
        after = _int(request.GET, "after")
    except BadQuery as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    events = _records_after(UsageRecord.objects.all(), after)
    names = dict(ApiKey.objects.filter(pk__in={e["key_id"] for e in events if e["key_id"]})
                 .values_list("pk", "name"))
    for e in events:
        e["key_name"] = names.get(e["key_id"], "")
    return _poll_response(events, after)


# --- a key's own page ------------------------------------------------------------------------------------


def _session_key(request) -> ApiKey | None:
    """The key this browser signed in with, if that secret is still valid (active, not expired)."""
    digest = request.session.get(SESSION_DIGEST)
    if not digest:
        return None
    principal = _load_principal(digest)
    if principal is None or not principal.is_valid_now():
        request.session.pop(SESSION_DIGEST, None)
        return None
    return ApiKey.objects.select_related("team").get(pk=principal.id)


@never_cache
@require_http_methods(["GET", "POST"])
def me(request):
    if request.method == "POST":
        ip = signin_throttle.address(request)
        if signin_throttle.blocked(ip):
            return render(request, "dashboards/me_login.html",
                          {"title": "Your key's usage", "error": "Too many failed sign-ins from your address; "
                                                                 "try again in a few minutes."}, status=429)
        secret = (request.POST.get("key") or "").strip()
        if secret.lower().startswith("bearer "):
            secret = secret[7:].strip()
        digest = lookup_hash(secret) if secret else ""
        principal = _load_principal(digest) if digest else None
        if principal is None or not principal.is_valid_now():
            signin_throttle.record_failure(ip)
            return render(request, "dashboards/me_login.html",
                          {"title": "Your key's usage", "error": "That key is not valid (unknown, revoked or "
                                                                 "expired)."}, status=401)
        request.session.cycle_key()
        request.session[SESSION_DIGEST] = digest
        return redirect("dashboards:me")
    key = _session_key(request)
    if key is None:
        return render(request, "dashboards/me_login.html", {"title": "Your key's usage"})
    return _key_page(request, key, staff=False)


@require_POST
def me_logout(request):
    request.session.pop(SESSION_DIGEST, None)
    return redirect("dashboards:me")


@never_cache
@require_GET
def key_feed_poll(request):
    """New records of one key, for pages that poll; authorised by the page's signed token (a header)."""
    key_id = feed.key_from_token(request.headers.get("X-Feed-Token", ""))
    if key_id is None or not ApiKey.objects.active().filter(pk=key_id).exists():
        return JsonResponse({"error": "feed token missing, invalid or expired: reload the page"}, status=401)
    try:
        after = _int(request.GET, "after")
    except BadQuery as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return _poll_response(_records_after(UsageRecord.objects.filter(key_id=key_id), after), after)


def _limits_rows(key: ApiKey) -> list[tuple[str, str, str]]:
    rows = []
    for scope, obj in (("key", key), ("team", key.team)):
        if obj is None:
            continue
        for label, value in (("requests per minute", obj.rpm_limit), ("tokens per minute", obj.tpm_limit),
                             ("parallel requests", obj.parallel_limit)):
            rows.append((scope, label, "no limit" if value is None else f"{value:,}"))
    return rows


def _key_page(request, key: ApiKey, *, staff: bool):
    try:
        window = parse_window(request.GET)
    except WindowError as exc:
        return render(request, "dashboards/error.html", {"message": str(exc)}, status=400)
    filters = Filters(key_id=key.pk)
    report = usage_report(window=window, filters=filters)
    now = datetime.now(UTC)
    budget_items = budgets(keys=[key], teams=[key.team] if key.team else [], now=now, with_daily=True)
    tables = report_tables(report, key_links=staff)
    tables.append(budget_table(budget_items, now=now, links=False))
    tables.append(percentile_table(latency_percentiles(window=window, filters=filters)))
    exported = _export(request, tables, f"usage-{key.prefix}")
    if exported is not None:
        return exported
    by_slug = {t.slug: t for t in tables}
    expired = key.expires_at is not None and key.expires_at <= now
    context = {
        **_window_context(request, window, Filters()),
        "title": f"Usage of key {key.name}",
        "key": key,
        "staff": staff,
        "status": "revoked" if not key.is_active else "expired" if expired else "active",
        "report": report,
        "tables": by_slug,
        "charts": _series_charts(report),
        "model_bars": charts.bar_chart([(g.label, g.totals.total_tokens) for g in report.models],
                                       title="Tokens by model"),
        "budgets": [
            (b, charts.burn_down_chart(b.daily, limit=b.limit, period_days=(b.resets_at - b.start).days,
                                       title=f"Budget burn-down ({b.scope}, {b.kind})"))
            for b in budget_items
        ],
        "limits": _limits_rows(key),
        "errors": recent_errors(key_id=key.pk),
        "live_mode": feed.live_mode(),
        "ws_path": "/ws/me/usage/",
        "poll_url": reverse("dashboards:me-feed"),
        "feed_token": feed.feed_token(key.pk),
    }
    return render(request, "dashboards/key.html", context)

