"""The pure parts of usage/limits.py: GCRA, the reservation decision, periods, estimates, headers."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from usage import limits
from usage.limits import Check, Demand, decide, format_duration, gcra, period_bounds, prompt_bounds

pytestmark = pytest.mark.smoke

MINUTE = 60_000.0


def test_gcra_allows_a_full_burst_then_one_per_interval():
    now, tat, passed = 1_000_000.0, None, 0
    for _ in range(15):
        ok, new, *_ = gcra(now, tat, 10, MINUTE, 1)
        if ok:
            passed, tat = passed + 1, new
    assert passed == 10
    ok, _new, remaining, _reset, retry = gcra(now, tat, 10, MINUTE, 1)
    assert not ok and remaining == 0 and retry == 6000  # one request every 6 s after the burst
    ok, *_ = gcra(now + 5999, tat, 10, MINUTE, 1)
    assert not ok
    ok, *_ = gcra(now + 6000, tat, 10, MINUTE, 1)
    assert ok


def test_gcra_has_no_boundary_double_burst():
    """Ten at 0.5 s before a minute boundary and more right after it: the bucket is still empty."""
    boundary = 60_000.0 * 28_000_000
    tat, passed = None, 0
    for t in [boundary - 500] * 10 + [boundary + 10] * 10:
        ok, new, *_ = gcra(t, tat, 10, MINUTE, 1)
        if ok:
            passed, tat = passed + 1, new
    assert passed == 10


def test_gcra_remaining_and_reset_report_the_state_after_taking():
    ok, tat, remaining, reset, _ = gcra(0.0, None, 10, MINUTE, 1)
    assert ok and remaining == 9 and reset == 6000
    ok, tat, remaining, reset, _ = gcra(0.0, tat, 10, MINUTE, 3)
    assert ok and remaining == 6 and reset == 24000
    # 12 s later two intervals have refilled.
    ok, _tat, remaining, reset, _ = gcra(12_000.0, tat, 10, MINUTE, 0)
    assert ok and remaining == 8 and reset == 12000


def test_gcra_uneven_intervals_still_pass_the_whole_limit():
    tat, passed = None, 0
    for _ in range(7):
        ok, new, *_ = gcra(5.0, tat, 7, MINUTE, 1)  # 8571.43 ms per request: float sums must not lose one
        if ok:
            passed, tat = passed + 1, new
    assert passed == 7


def test_gcra_cost_above_the_limit_never_passes():
    ok, _tat, _remaining, _reset, retry = gcra(0.0, None, 1000, MINUTE, 1001)
    assert not ok and retry == -1


def budget_args(limit, base, per=1):
    return ("b", limit, base, per, 3600)


def test_budget_grants_all_or_nothing_when_the_call_cannot_be_cut():
    o = decide(0.0, [budget_args(1000, 100)], {0: 850}, {}, max_out=100, min_out=100)
    assert o.status == 0 and o.failed == 1 and o.info == [(850, 0)]
    o = decide(0.0, [budget_args(1000, 100)], {0: 800}, {}, max_out=100, min_out=100)
    assert o.status == 1 and o.out == 100 and o.info == [(1000, 0)]


def test_budget_grants_what_is_left_to_a_call_that_can_be_cut():
    o = decide(0.0, [budget_args(1000, 100)], {0: 850}, {}, max_out=4096, min_out=1)
    assert o.status == 1 and o.out == 50 and o.info == [(1000, 0)]
    o = decide(0.0, [budget_args(1000, 100)], {0: 900}, {}, max_out=4096, min_out=1)
    assert o.status == 0  # the prompt fits, but no output would


def test_the_tightest_budget_bounds_the_output_and_usd_converts_per_token():
    args = [budget_args(10_000, 100), ("b", 1_000_000, 100 * 500, 2_000, 3600)]  # $0.001; 500 n$/in, 2000 n$/out
    o = decide(0.0, args, {0: 0, 1: 0}, {}, max_out=4096, min_out=1)
    assert o.status == 1 and o.out == (1_000_000 - 50_000) // 2000 == 475
    assert o.info[1][0] == 50_000 + 475 * 2000 <= 1_000_000


def test_one_refusal_takes_nothing_and_reports_the_first():
    args = [budget_args(1000, 10), ("g", 2, MINUTE, 1, 0), ("p", 1, 1000, 0, 0)]
    o = decide(0.0, args, {0: 0, 1: None}, {2: 1}, max_out=10, min_out=10)
    assert o.status == 0 and o.failed == 3 and o.new == {}
    assert o.info[0] == (0, 0) and o.info[1] == (2, 0)  # as they stand, not as if taken


def test_zero_budget_blocks_everything():
    o = decide(0.0, [budget_args(0, 0)], {0: 0}, {}, max_out=0, min_out=0)
    assert o.status == 0


@pytest.mark.parametrize(("ms", "text"), [
    (0, "0s"), (0.2, "1ms"), (120, "120ms"), (999, "999ms"), (1000, "1s"), (6000, "6s"), (8640, "8.64s"),
    (60_000, "1m0s"), (86_400, "1m26.4s"), (3_723_000, "1h2m3s"), (-5, "0s"),
])
def test_durations_are_written_like_openai(ms, text):
    assert format_duration(ms) == text


def test_calendar_periods_in_utc():
    t = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert period_bounds("day", t) == (datetime(2025, 12, 31, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),
                                       "d20251231")
    assert period_bounds("week", t)[0] == datetime(2025, 12, 29, tzinfo=UTC)  # a Monday
    assert period_bounds("week", t)[1] == datetime(2026, 1, 5, tzinfo=UTC)
    assert period_bounds("month", t) == (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),
                                         "m202512")


def test_prompt_bounds_hold_every_byte_but_not_inline_media():
    body = b'{"model":"m","messages":[{"role":"user","content":"hello there"}]}'
    upper, typical = prompt_bounds(body)
    assert upper == len(body) and typical == -(-len(body) // 4)
    image = b"data:image/png;base64," + b"A" * 100_000
    upper, _ = prompt_bounds(body[:-3] + b',{"type":"image_url","image_url":{"url":"' + image + b'"}}]}')
    assert upper < len(body) + 100 + limits.MEDIA_TOKENS


def test_demand_uses_the_default_output_when_unknown_and_multiplies_choices(settings):
    settings.LIMITS_DEFAULT_MAX_OUTPUT_TOKENS = 1000
    d = limits.demand_for(body=b"x" * 40, max_output=None, choices=2, cuttable=True,
                          price_in_per_m=Decimal("0.5"), price_out_per_m=Decimal("1.5"))
    assert (d.prompt_tokens, d.max_output, d.min_output, d.nano_in, d.nano_out) == (40, 2000, 1, 500, 1500)
    assert d.rate_tokens == 10 + 2000
    d = limits.demand_for(body=b"x" * 40, max_output=50)
    assert d.min_output == d.max_output == 50


def check(kind, limit, scope="key", **kw):
    return Check(kind, scope, 1, "k", limit, f"k1:{kind}", **kw)


def test_headers_pick_the_tightest_scope_and_budget_warnings():
    resets = datetime(2030, 1, 1, tzinfo=UTC)
    checks = [check("tokens", 1000, period="month", resets_at=resets, warn_at=800), check("rpm", 100),
              check("rpm", 10, scope="team"), check("tpm", 5000)]
    headers = limits._headers(checks, [(850, 0), (99, 600), (3, 42_000), (4000, 12_000)])
    assert headers["x-ratelimit-limit-requests"] == "10"
    assert headers["x-ratelimit-remaining-requests"] == "3"
    assert headers["x-ratelimit-reset-requests"] == "42s"
    assert (headers["x-ratelimit-limit-tokens"], headers["x-ratelimit-remaining-tokens"]) == ("5000", "4000")
    assert headers["x-ratelimit-reset-tokens"] == "12s"
    assert headers["x-gateway-budget-remaining-tokens"] == "150"
    assert "85% of the monthly token budget" in headers["x-gateway-budget-warning"]


def test_refusals_are_openai_shaped():
    resets = datetime(2999, 1, 1, tzinfo=UTC)
    demand = Demand(rate_tokens=10, prompt_tokens=10, max_output=5, min_output=5)
    rpm = limits._refusal([check("rpm", 10)], limits.Outcome(0, 1, 5400, 0, [(0, 60_000)]), demand)
    assert (rpm.type, rpm.code, rpm.status) == ("requests", "rate_limit_exceeded", 429)
    assert rpm.headers["retry-after"] == "6" and rpm.headers["retry-after-ms"] == "5400"
    assert rpm.headers["x-ratelimit-remaining-requests"] == "0" and "5.4s" in rpm.message
    budget = limits._refusal([check("tokens", 100, period="day", resets_at=resets)],
                             limits.Outcome(0, 1, 0, 0, [(95, 0)]), demand)
    assert (budget.type, budget.code) == ("insufficient_quota", "insufficient_quota")
    assert int(budget.headers["retry-after"]) > 0 and "daily token budget" in budget.message
