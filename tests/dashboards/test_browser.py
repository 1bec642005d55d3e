"""In a real browser (Debian's chromium, headless, driven by Playwright): an operator signs into the admin,
creates a key, traffic goes through the gateway to the OCI emulator, and the dashboards show it live and
in totals equal to what the emulator billed.

Set SCREENSHOTS_DIR to keep PNGs of the main pages (docs/screenshots/ is made that way).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from usage.models import (
    ApiKey,
    UsageDailyKeyRollup,
    UsageDailyModelRollup,
    UsageDailyRollup,
    UsageRecord,
    UsageRollup,
)
from usage.recorder import recorder

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
MODEL = "meta.llama-3.3-70b-instruct"
LIVE_WITHIN_MS = 2000


@pytest.fixture(scope="module")
def browser():
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "the playwright package is not installed (requirements-dev.txt)"
    if problem is None and not Path(CHROMIUM).exists():
        problem = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests must run in CI: {problem}")
        pytest.skip(problem)
    # Playwright's sync API keeps an event loop running in this thread, which makes Django refuse ORM calls
    # from the test body ("async context"); they are plain sync calls here, as Playwright's docs note.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def screenshots(tmp_path) -> Path:
    target = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture
def live_flusher(gateway):
    """The session's live gateway writes usage with its own background flusher, which these tests rely on
    (they never flush by hand). A second in-process server stopped by an earlier test shuts down that
    shared recorder (its lifespan shutdown runs background.shutdown()); have the gateway start it again
    on its next request."""
    from gateway_project import background

    alive = recorder._tasks and all(not t.done() and not t.get_loop().is_closed() for t in recorder._tasks)
    if not alive:
        recorder._tasks = []
        background._started = False
    return gateway


def _chat(client, *, stream: bool, n: int) -> str:
    """One chat call through the gateway; returns its request id (the usage record's id)."""
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": f"Say hello number {n}"}], stream=stream,
        max_tokens=40,
    )
    request_id = raw.headers["x-request-id"]
    parsed = raw.parse()
    if stream:
        for _chunk in parsed:
            pass
    return request_id


def _total(page, name: str) -> int:
    return int(page.locator(f'[data-total="{name}"]').get_attribute("data-value"))


def test_operator_and_key_holder_watch_traffic_live(live_flusher, gateway, settings, browser, screenshots):
    # One serving process (the live gateway runs in this test process): the in-memory channel layer
    # reaches every socket, so the pages use the websocket, not polling (see test_views for that).
    settings.WORKERS = 1
    # Usage still queued by earlier tests would land in this test's tables under reused key ids: write it
    # now and start from empty usage tables.
    recorder.flush()
    for table in (UsageRecord, UsageRollup, UsageDailyRollup, UsageDailyKeyRollup, UsageDailyModelRollup):
        table.objects.all().delete()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-for-tests-123")
    # Other keys' history, so the pages have something around the new key's traffic.
    call_command("generate_usage", rows=2500, keys=15, days=14, seed=11, stdout=io.StringIO())

    context = browser.new_context(base_url=gateway.base_url, viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw-for-tests-123")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")

    page.goto("/admin/usage/apikey/add/")
    page.fill("#id_name", "browser-key")
    page.click("input[name=_save]")
    secret = page.locator("#gateway-secret").inner_text().strip()
    key = ApiKey.objects.get(name="browser-key")

    page.goto("/dashboards/?range=24h")
    page.wait_for_selector('#live[data-state="ready"]', timeout=10_000)

    holder_context = browser.new_context(base_url=gateway.base_url, viewport={"width": 1360, "height": 900})
    holder = holder_context.new_page()
    holder.goto("/me/")
    holder.fill("#key", secret)
    holder.click("button[type=submit]")
    holder.wait_for_selector('#live[data-state="ready"]', timeout=10_000)
    assert secret not in holder.content()

    since = gateway.emulator.last_seq()
    client = gateway.openai(api_key=secret)
    delays = []
    for n, stream in enumerate([False, True, False, True]):
        request_id = _chat(client, stream=stream, n=n)
        done = time.monotonic()
        row = f'#live tr[data-request-id="{request_id}"]'
        for who, p in (("staff", page), ("key holder", holder)):
            # Wait longer than the promise, to tell "late" from "never" when it fails.
            p.wait_for_selector(row, timeout=10_000)
            delays.append((who, n, round((time.monotonic() - done) * 1000)))
    assert all(ms < LIVE_WITHIN_MS for _who, _n, ms in delays), f"shown after (ms): {delays}"

    billed = [e for e in gateway.emulator.ledger(since) if e.get("usage")]
    assert len(billed) == 4
    billed_tokens = sum(e["usage"]["totalTokens"] for e in billed)
    assert billed_tokens > 0
    live_tokens = int(holder.locator('[data-live="tokens"]').inner_text())
    assert live_tokens == billed_tokens

    screenshot_live = screenshots / "live-feed.png"
    page.locator("#live").screenshot(path=str(screenshot_live))

    page.goto(f"/dashboards/?range=24h&key={key.pk}")
    assert _total(page, "total_tokens") == billed_tokens
    assert _total(page, "requests") == 4
    # A budget set meanwhile shows on the key's page with what remains of it.
    ApiKey.objects.filter(pk=key.pk).update(token_budget=20_000, budget_warn_percent=80)
    holder.reload()
    assert _total(holder, "total_tokens") == billed_tokens
    assert _total(holder, "requests") == 4
    remaining = holder.locator('[data-remaining="key-tokens"]').inner_text()
    assert remaining.replace(",", "") == str(20_000 - billed_tokens)
    holder.wait_for_selector('#live[data-state="ready"]')
    more = [_chat(client, stream=True, n=10 + n) for n in range(2)]
    for request_id in more:
        holder.wait_for_selector(f'#live tr[data-request-id="{request_id}"]', timeout=LIVE_WITHIN_MS)
    holder.screenshot(path=str(screenshots / "key-page.png"), full_page=True)

    page.goto("/dashboards/?range=7d")
    page.wait_for_selector('#live[data-state="ready"]')
    page.screenshot(path=str(screenshots / "staff-dashboard.png"), full_page=True)
    page.screenshot(path=str(screenshots / "staff-dashboard-top.png"))

    # Tables read without JavaScript: the same page rendered with scripts off still has its numbers.
    no_js = browser.new_context(base_url=gateway.base_url, java_script_enabled=False)
    no_js.add_cookies(context.cookies())
    plain = no_js.new_page()
    plain.goto(f"/dashboards/?range=24h&key={key.pk}")
    all_billed = sum(e["usage"]["totalTokens"] for e in gateway.emulator.ledger(since) if e.get("usage"))
    assert _total(plain, "total_tokens") == all_billed
    assert plain.locator('table[data-table="series"] tbody tr').count() == 24
    for c in (no_js, holder_context, context):
        c.close()


@pytest.mark.no_redis  # its premise is a deployment without Redis: CI runs it in the SQLite stage
@pytest.mark.smoke
def test_several_workers_without_redis_poll_instead(live_flusher, gateway, settings, browser):
    """With WORKERS > 1 and no Redis a socket would show one worker's traffic: the page polls instead."""
    settings.WORKERS, settings.REDIS_URL = 4, ""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-for-tests-123")
    context = browser.new_context(base_url=gateway.base_url)
    page = context.new_page()
    page.goto("/admin/login/?next=/dashboards/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw-for-tests-123")
    page.click("input[type=submit]")
    page.wait_for_selector('#live[data-mode="poll"][data-state="ready"]', timeout=10_000)
    request_id = _chat(gateway.openai(), stream=False, n=1)
    # flushed within USAGE_FLUSH_SECONDS (1 s), then seen by the next poll (every 2 s)
    page.wait_for_selector(f'#live tr[data-request-id="{request_id}"]', timeout=8_000)
    assert "polling" in page.locator("#live .live-status").inner_text()
    context.close()
