"""Dashboard reads: totals from hourly and daily rollups agree with the raw rows; budgets; samples."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum

from usage.dashboards.selectors import (
    Filters,
    budgets,
    latency_percentiles,
    recent_errors,
    usage_report,
)
from usage.dashboards.windows import parse_window
from usage.models import (
    ApiKey,
    Team,
    UsageDailyKeyRollup,
    UsageDailyModelRollup,
    UsageDailyRollup,
    UsageRecord,
    UsageRollup,
)

from .conftest import event, write

pytestmark = [pytest.mark.smoke, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def keys(db):
    team = Team.objects.create(name="search", token_budget=1000, token_budget_period="month")
    a = ApiKey.objects.create(name="alpha", prefix="a", lookup_hash="a" * 64, team=team, token_budget=500,
                              usd_budget=Decimal("1.00"), usd_budget_period="day")
    b = ApiKey.objects.create(name="beta", prefix="b", lookup_hash="b" * 64)
    return a, b, team


def test_daily_rollups_follow_hourly_ones_through_every_write():
    day = datetime(2026, 11, 20, 10, tzinfo=UTC)
    write(event(created_at=day), event(created_at=day + timedelta(hours=5), status=502, prompt_tokens=0,
                                       completion_tokens=0))
    write(event(created_at=day + timedelta(minutes=3)), event(created_at=day + timedelta(days=1)))
    for field in ("requests", "errors", "total_tokens", "cost_usd", "ttft_count"):
        hourly = UsageRollup.objects.aggregate(v=Sum(field))["v"]
        for table in (UsageDailyRollup, UsageDailyKeyRollup, UsageDailyModelRollup):
            assert table.objects.aggregate(v=Sum(field))["v"] == hourly, (table, field)
    first = UsageDailyRollup.objects.get(day=day.date())
    assert (first.requests, first.errors, first.total_tokens) == (3, 1, 30)


def test_report_totals_equal_raw_rows_whatever_the_source(keys):
    a, b, team = keys
    now = datetime.now(UTC)
    write(*[event(key_id=a.pk, team_id=team.pk, prompt_tokens=100 + i, created_at=now - timedelta(hours=i * 7))
            for i in range(30)])
    write(*[event(key_id=b.pk, public_model="grok", region="eu-frankfurt-1", status=429 if i % 3 == 0 else 200,
                  created_at=now - timedelta(hours=i * 5)) for i in range(20)])
    for params in ({"range": "24h"}, {"range": "7d"}, {"range": "7d", "interval": "hour"}, {"range": "30d"}):
        window = parse_window(params)
        report = usage_report(window=window, filters=Filters())
        raw = UsageRecord.objects.filter(created_at__gte=window.start, created_at__lt=window.end)
        assert report.totals.total_tokens == (raw.aggregate(v=Sum("total_tokens"))["v"] or 0), params
        assert report.totals.requests == raw.count()
        assert report.totals.errors == raw.filter(status__gte=400).count()
        assert sum(g.totals.requests for g in report.series) == raw.count()
        assert {g.label for g in report.keys} == set(
            ApiKey.objects.filter(pk__in=raw.values("key_id")).values_list("name", flat=True))
    report = usage_report(window=parse_window({"range": "30d"}), filters=Filters(team_id=team.pk))
    assert [g.label for g in report.keys] == ["alpha"] and [g.label for g in report.teams] == ["search"]
    report = usage_report(window=parse_window({"range": "30d"}), filters=Filters(model="grok"))
    assert [g.label for g in report.models] == ["grok"] and [g.label for g in report.regions] == ["eu-frankfurt-1"]


def test_budgets_count_the_current_period_only(keys):
    a, _b, team = keys
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    write(event(key_id=a.pk, team_id=team.pk, prompt_tokens=100, completion_tokens=20, cost_usd=Decimal("0.25"),
                created_at=now - timedelta(minutes=1)),
          event(key_id=a.pk, team_id=team.pk, prompt_tokens=7000, completion_tokens=0,
                created_at=month_start - timedelta(hours=2)))  # last period: not counted
    items = {(b.scope, b.kind): b for b in budgets(keys=[a], teams=[team], now=now, with_daily=True)}
    assert items[("key", "tokens")].used == 120 and items[("key", "tokens")].remaining == 380
    assert items[("key", "usd")].used == Decimal("0.25") and items[("key", "usd")].period == "day"
    assert items[("team", "tokens")].used == 120
    assert sum(u for _d, u in items[("key", "tokens")].daily) == 120
    assert items[("key", "tokens")].projected_exhaustion(now) is None or \
        items[("key", "tokens")].projected_exhaustion(now) < items[("key", "tokens")].resets_at


def test_percentiles_and_recent_errors_come_from_bounded_samples(keys):
    a, _b, _team = keys
    now = datetime.now(UTC)
    write(*[event(key_id=a.pk, latency_ms=i * 10, ttft_ms=i, created_at=now - timedelta(seconds=i))
            for i in range(1, 101)])
    write(event(key_id=a.pk, status=500, error_type="upstream_error", created_at=now - timedelta(hours=1)))
    p = latency_percentiles(window=parse_window({"range": "24h"}), filters=Filters(key_id=a.pk), sample=50)
    assert p.sample == 50 and p.latency["p50"] == 250 and p.ttft["p95"] == 48
    errors = recent_errors(key_id=a.pk)
    assert [e.status for e in errors] == [500]
    assert recent_errors(key_id=a.pk, scan=10) == []  # older than the key's latest 10 requests
