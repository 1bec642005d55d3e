"""Limits on the /v1 surface of one gateway: headers, the mid-stream cut, parallel slots, /v1/usage, outages."""

import time

import httpx
import orjson
import pytest

from usage import limits
from usage.models import UsageRecord

from .helpers import MODEL, Answer, chat_body, make_key, usage_rows

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.smoke]


def post(gateway, secret, body, **kw) -> httpx.Response:
    return httpx.post(gateway.api_base + "/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {secret}"}, **kw)


def test_success_carries_openai_rate_headers_and_usage_shows_limits(gateway):
    _key, secret = make_key("headers", rpm_limit=100, tpm_limit=100_000, token_budget=50_000,
                            token_budget_period="week", budget_warn_percent=80)
    r = post(gateway, secret, chat_body("hello", max_tokens=20))
    assert r.status_code == 200, r.text
    h = r.headers
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("100", "99")
    assert h["x-ratelimit-reset-requests"] == "600ms"
    assert h["x-ratelimit-limit-tokens"] == "100000" and int(h["x-ratelimit-remaining-tokens"]) < 100_000
    assert int(h["x-gateway-budget-remaining-tokens"]) < 50_000 and "x-gateway-budget-warning" not in h
    usage = httpx.get(gateway.api_base + "/usage", headers={"Authorization": f"Bearer {secret}"}, timeout=10).json()
    assert usage["limits"]["key"] == {"requests_per_minute": 100, "tokens_per_minute": 100_000,
                                      "parallel_requests": None}
    tokens = usage["budget"]["key"]["tokens"]
    assert tokens["limit"] == 50_000 and tokens["period"] == "week" and 0 < tokens["used"] < 200
    assert tokens["warn_at_percent"] == 80
    plain = httpx.get(gateway.api_base + "/usage", headers={"Authorization": f"Bearer {gateway.key}"}, timeout=10)
    assert plain.json()["limits"] == {"key": limits.NO_LIMITS.describe()} and plain.json()["budget"] is None


def test_keys_without_limits_get_no_limit_headers(gateway):
    r = post(gateway, gateway.key, chat_body("hello"))
    assert r.status_code == 200 and not any(k.startswith("x-ratelimit") for k in r.headers)


def test_soft_threshold_only_warns(gateway):
    _key, secret = make_key("soft", token_budget=2000, budget_warn_percent=10)
    r = post(gateway, secret, chat_body("[[emulator: words=200]] hi", max_tokens=250))
    assert r.status_code == 200 and "% of the monthly token budget used" in r.headers["x-gateway-budget-warning"]


def test_a_stream_is_cut_within_one_event_of_its_budget(gateway):
    body = orjson.dumps(chat_body("[[emulator: words=200 interval_ms=10]] a long story", stream=True))
    prompt_upper, _ = limits.prompt_bounds(body)
    key, secret = make_key("cut", token_budget=prompt_upper + 50)
    with httpx.stream("POST", gateway.api_base + "/chat/completions", content=body, timeout=30,
                      headers={"Authorization": f"Bearer {secret}", "content-type": "application/json"}) as r:
        assert r.status_code == 200
        answer = Answer(r.status_code, r.headers, r.read())
    assert answer.events[-1] == "[DONE]"
    error = answer.events[-2]["error"]
    assert (error["type"], error["code"], error["param"]) == ("insufficient_quota", "insufficient_quota", None)
    assert answer.content_chunks == 50  # the budget held exactly 50 output tokens after the prompt
    record = usage_rows(gateway, 1, key_id=key.id)[0]
    assert (record.status, record.error_type, record.completion_tokens) == (429, "insufficient_quota", 50)
    assert record.total_tokens <= prompt_upper + 50
    upstream = [e for e in gateway.emulator.ledger() if e.get("stream")][-1]
    assert upstream["disconnected"] and upstream["eventsWritten"] < 120  # upstream was closed, not drained


def test_a_stream_within_budget_is_not_cut(gateway):
    _key, secret = make_key("roomy", token_budget=100_000)
    with httpx.stream("POST", gateway.api_base + "/chat/completions", json=chat_body(
            "[[emulator: words=300]] go", stream=True), timeout=30,
            headers={"Authorization": f"Bearer {secret}"}) as r:
        answer = Answer(r.status_code, r.headers, r.read())
    assert answer.events[-1] == "[DONE]" and "error" not in answer.events[-2] and answer.content_chunks == 300


def test_parallel_slots_are_freed_when_a_stream_ends_or_its_client_leaves(gateway):
    _key, secret = make_key("parallel", parallel_limit=1)
    headers = {"Authorization": f"Bearer {secret}"}
    slow = chat_body("[[emulator: words=100 interval_ms=30]] go", stream=True)
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", gateway.api_base + "/chat/completions", json=slow, headers=headers) as r:
            lines = r.iter_lines()  # kept: a dropped httpx line iterator closes the connection
            next(lines)
            second = post(gateway, secret, chat_body("hi"))
            assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limit_exceeded"
            assert second.headers["retry-after"] == "1"
        # The client left mid-stream: the slot comes back as soon as the gateway sees it.
        deadline = time.monotonic() + 5
        while (third := post(gateway, secret, chat_body("hi"))).status_code == 429:
            assert time.monotonic() < deadline, "the slot of a disconnected stream was never released"
            time.sleep(0.1)
        assert third.status_code == 200


def test_a_failed_call_gives_its_reservation_back(gateway):
    _key, secret = make_key("refund", token_budget=1000)
    for _ in range(5):  # each reserves ~500 tokens; the upstream fails, so nothing is kept
        r = post(gateway, secret, chat_body("[[emulator: status=500]] x", max_tokens=400))
        assert r.status_code >= 500
    r = post(gateway, secret, chat_body("fine", max_tokens=400))
    assert r.status_code == 200, r.text


def test_unreachable_redis_fails_budgets_closed_and_rates_open(gateway, monkeypatch, caplog):
    dead = limits.RedisBackend(url="redis://127.0.0.1:1/0")
    monkeypatch.setattr(limits, "_backend", lambda: dead)
    monkeypatch.setattr(limits, "_loud_last", {})
    _k1, budgeted = make_key("closed", token_budget=10**6)
    _k2, rated = make_key("open", rpm_limit=1)
    r = post(gateway, budgeted, chat_body("hi"))
    assert r.status_code == 503 and r.json()["error"]["code"] == "limits_unavailable" and r.headers["retry-after"]
    for _ in range(3):  # one per minute, but the limit cannot be checked: let through
        assert post(gateway, rated, chat_body("hi")).status_code == 200
    assert "FAILING CLOSED" in caplog.text and "FAILING OPEN" in caplog.text
    assert UsageRecord.objects.filter(status=503).exists() or usage_rows(gateway, 4)


def test_legacy_completions_reserve_their_own_output_length(gateway, settings):
    """A completion asking for 20 tokens holds about 20 on the limits, not the assumed default output."""
    settings.LIMITS_DEFAULT_MAX_OUTPUT_TOKENS = 4096
    _key, secret = make_key("completions", tpm_limit=3000)
    headers = {"Authorization": f"Bearer {secret}"}
    single = {"model": MODEL, "prompt": "Say hello", "max_tokens": 20}
    r = httpx.post(gateway.api_base + "/completions", json=single, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert 3000 - int(r.headers["x-ratelimit-remaining-tokens"]) < 100
    # A batch of prompts reserves for each of them: 2 prompts × n=2 × 1000 tokens cannot fit in 3000.
    batch = {"model": MODEL, "prompt": ["one", "two"], "n": 2, "max_tokens": 1000}
    r = httpx.post(gateway.api_base + "/completions", json=batch, headers=headers, timeout=30)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
