"""Reserve, settle and extend against each backend: the database (always) and Redis (when configured)."""

import asyncio
import logging
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.conf import settings

from usage import limits
from usage.auth import KeyPrincipal
from usage.limits import Demand, LimitExceeded, Limits

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.smoke]


def principal(key: Limits = limits.NO_LIMITS, team: Limits | None = None) -> KeyPrincipal:
    # Ids no other test uses: Redis counters outlive the tables a test empties.
    kid, tid = random.randrange(10**8, 10**9), random.randrange(10**8, 10**9)
    return KeyPrincipal(
        id=kid, name=f"key{kid}", prefix="sk-test", team_id=tid if team else None, team_name="team" if team else "",
        allowed_models=frozenset(), team_allowed_models=frozenset(), metadata={}, expires_at=None, digest="d",
        previous_valid_until=None, limits=key, team_limits=team or limits.NO_LIMITS,
    )


def demand(prompt=100, out=200, cuttable=False, rate=None) -> Demand:
    return Demand(rate_tokens=rate if rate is not None else prompt + out, prompt_tokens=prompt, max_output=out,
                  min_output=min(1, out) if cuttable else out)


async def taken(p, d, n=1) -> list:
    """Reserve n times at once; the reservations that passed (refusals left out)."""
    results = await asyncio.gather(*(limits.reserve(p, d) for _ in range(n)), return_exceptions=True)
    for r in results:
        assert r is None or isinstance(r, (limits.Reservation, LimitExceeded)), r
    return [r for r in results if isinstance(r, limits.Reservation)]


async def test_requests_per_minute_hold_under_concurrency(backend):
    p = principal(Limits(rpm=7))
    assert len(await taken(p, demand(), 30)) == 7
    with pytest.raises(LimitExceeded) as refused:
        await limits.reserve(p, demand())
    e = refused.value
    assert (e.status, e.type, e.code) == (429, "requests", "rate_limit_exceeded")
    assert e.headers["x-ratelimit-limit-requests"] == "7" and e.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(e.headers["retry-after"]) <= 9 and e.headers["x-ratelimit-reset-requests"].endswith("s")


async def test_tokens_per_minute_are_given_back_when_the_call_used_less(backend):
    p = principal(Limits(tpm=1000))
    first, second = await taken(p, demand(rate=400), 2)
    with pytest.raises(LimitExceeded) as refused:
        await limits.reserve(p, demand(rate=400))
    assert refused.value.type == "tokens"
    await limits.settle(first, tokens=100, cost_usd=0)  # 300 tokens back
    third = await limits.reserve(p, demand(rate=400))
    assert 100 <= int(third.headers["x-ratelimit-remaining-tokens"]) <= 110  # 1000 - 400 - 100 - 400, + refill
    with pytest.raises(LimitExceeded) as too_large:
        await limits.reserve(p, demand(rate=1001))
    assert "Request too large" in too_large.value.message and "retry-after" not in too_large.value.headers


async def test_parallel_slots_are_released_by_settle(backend):
    p = principal(Limits(parallel=2))
    held = await taken(p, demand(), 10)
    assert len(held) == 2
    with pytest.raises(LimitExceeded) as refused:
        await limits.reserve(p, demand())
    assert refused.value.code == "rate_limit_exceeded" and refused.value.headers["retry-after"] == "1"
    await limits.settle(held[0], tokens=0, cost_usd=0)
    await limits.settle(held[0], tokens=0, cost_usd=0)  # settling twice frees one slot, once
    assert len(await taken(p, demand(), 5)) == 1


async def test_token_budget_all_or_nothing_then_refund(backend):
    p = principal(Limits(token_budget=1000, token_period="day"))
    held = await taken(p, demand(prompt=100, out=200), 20)
    assert len(held) == 3  # 3 × 300 fit in 1000, a fourth does not
    with pytest.raises(LimitExceeded) as refused:
        await limits.reserve(p, demand(prompt=100, out=200))
    e = refused.value
    assert (e.status, e.type, e.code) == (429, "insufficient_quota", "insufficient_quota")
    assert int(e.headers["retry-after"]) <= 86400 and e.headers["x-gateway-budget-remaining-tokens"] == "100"
    await limits.settle(held[0], tokens=50, cost_usd=0)  # used 50 of its 300
    fourth = await limits.reserve(p, demand(prompt=100, out=200))
    assert fourth.headers["x-gateway-budget-remaining-tokens"] == str(1000 - 50 - 300 - 300 - 300)


async def test_a_cuttable_call_gets_what_is_left_and_can_extend(backend):
    p = principal(Limits(token_budget=1000))
    first = await limits.reserve(p, demand(prompt=100, out=4096, cuttable=True))
    assert first.out == 900 and first.allowance == 900
    with pytest.raises(LimitExceeded):
        await limits.reserve(p, demand(prompt=100, out=4096, cuttable=True))
    assert await limits.extend(first, 256) == 0
    await limits.settle(first, tokens=300, cost_usd=0)
    second = await limits.reserve(p, demand(prompt=100, out=200, cuttable=True))
    assert second.out == 200 and second.allowance == 200
    assert await limits.extend(second, 1000) == 400  # 1000 - 300 - 300 left
    assert second.allowance == 600 and await limits.extend(second, 1) == 0


async def test_key_and_team_are_taken_together_or_not_at_all(backend):
    p = principal(Limits(token_budget=10_000, rpm=100), team=Limits(token_budget=500))
    with pytest.raises(LimitExceeded) as refused:
        await limits.reserve(p, demand(prompt=100, out=500))
    assert "team 'team'" in refused.value.message
    ok = await limits.reserve(p, demand(prompt=100, out=300))
    # Nothing of the refused call was taken on the key: 400 of its 10,000 are held, 99 requests remain.
    assert ok.headers["x-gateway-budget-remaining-tokens"] == "100"  # the team's, the tighter
    assert ok.headers["x-ratelimit-remaining-requests"] == "99"
    key_budget = next(c for c in ok.checks if c.scope == "key" and c.kind == "tokens")
    assert await limits._backend().read([key_budget]) == [400]


async def test_usd_budget_counts_prices_and_real_cost(backend):
    p = principal(Limits(usd_budget=Decimal("0.001")))  # one million nano-dollars
    d = limits.demand_for(body=b"x" * 1000, max_output=100, price_in_per_m=Decimal("0.1"),
                          price_out_per_m=Decimal("2"))  # 100,000 n$ per prompt, 200,000 n$ for output
    held = await taken(p, d, 5)
    assert len(held) == 3
    await limits.settle(held[0], tokens=0, cost_usd=Decimal("0.0001"))
    assert await limits.reserve(p, d) is not None
    snapshot = await limits.snapshot(p)
    assert snapshot["budget"]["key"]["usd"]["limit"] == 0.001
    assert snapshot["budget"]["key"]["usd"]["used"] == pytest.approx(0.001)


async def test_budget_counters_start_from_recorded_usage(backend):
    from gateway_project.db import run_db
    from usage.models import UsageRollup

    p = principal(Limits(token_budget=1000, token_period="month"))
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    await run_db(UsageRollup.objects.create, bucket=hour, key_id=p.id, public_model="m", region="r", requests=1,
                 total_tokens=900)
    with pytest.raises(LimitExceeded):
        await limits.reserve(p, demand(prompt=100, out=100))
    assert await limits.reserve(p, demand(prompt=50, out=50)) is not None
    assert (await limits.snapshot(p))["budget"]["key"]["tokens"]["used"] == 1000


async def test_unreachable_redis_fails_open_for_rates_and_closed_for_budgets(monkeypatch, settings, caplog):
    dead = limits.RedisBackend(url="redis://127.0.0.1:1/0")
    monkeypatch.setattr(limits, "_backend", lambda: dead)
    caplog.set_level(logging.ERROR, logger="gateway.limits")
    monkeypatch.setattr(limits, "_loud_last", {})
    assert await limits.reserve(principal(Limits(rpm=1)), demand()) is None
    assert "FAILING OPEN" in caplog.text
    with pytest.raises(LimitExceeded) as refused:
        await limits.reserve(principal(Limits(rpm=1, token_budget=10**6)), demand())
    assert refused.value.status == 503 and refused.value.code == "limits_unavailable"
    assert "FAILING CLOSED for tokens" in caplog.text
    settings.LIMITS_FAIL_OPEN_BUDGETS = True
    assert await limits.reserve(principal(Limits(token_budget=10**6)), demand()) is None
    settings.LIMITS_FAIL_OPEN_RATES = False
    with pytest.raises(LimitExceeded):
        await limits.reserve(principal(Limits(rpm=5)), demand())


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL: the warm path runs on Redis alone")
async def test_with_redis_a_warm_call_touches_no_database(monkeypatch):
    seeds = []
    real_seed = limits.seed_value
    monkeypatch.setattr(limits, "seed_value", lambda check: seeds.append(check.counter) or real_seed(check))

    def no_database(*args, **kwargs):
        raise AssertionError("the database backend was used although Redis is configured")

    monkeypatch.setattr(limits.DatabaseBackend, "_reserve", no_database)
    monkeypatch.setattr(limits.DatabaseBackend, "_settle", no_database)
    p = principal(Limits(rpm=100, tpm=10**6, parallel=5, token_budget=10**6, usd_budget=Decimal(10)),
                  team=Limits(token_budget=10**6))
    for _ in range(3):
        r = await limits.reserve(p, demand())
        await limits.settle(r, tokens=42, cost_usd=Decimal("0.01"))
    assert len(seeds) == 3  # each budget counter was started from the rollups once, on first use
