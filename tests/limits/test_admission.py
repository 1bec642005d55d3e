"""Admission beside signing: the limiter's round trip runs while the upstream request is signed
(CallContext.begin_admission, api/chat.py)."""

import asyncio
from types import SimpleNamespace

import httpx
import pytest

from api.context import CallContext
from api.upstream import client
from usage import limits

from .helpers import chat_body, make_key, needs_redis

pytestmark = pytest.mark.django_db(transaction=True)


def post(gateway, secret, body) -> httpx.Response:
    return httpx.post(gateway.api_base + "/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def signings(monkeypatch):
    """Wraps the signing of upstream requests; each call appends what it saw of the limiter's Redis link."""
    seen: list[dict] = []
    real = client.signed_headers

    async def watching(*args, **kwargs):
        entry = limits._REDIS._clients.get(asyncio.get_running_loop())
        conn = entry[1]._conn if entry else None
        seen.append({"in_flight": len(conn.waiters) if conn else 0, "unsent": len(conn.outgoing) if conn else 0})
        return await real(*args, **kwargs)

    monkeypatch.setattr(client, "signed_headers", watching)
    return seen


@needs_redis
def test_the_reservation_is_on_its_way_to_redis_while_the_request_is_signed(gateway, signings):
    _key, secret = make_key("overlap", rpm_limit=10, tpm_limit=10**7)
    post(gateway, secret, chat_body("warm the connection"))
    signings.clear()
    r = post(gateway, secret, chat_body("hello"))
    assert r.status_code == 200, r.text
    assert r.headers["x-ratelimit-remaining-requests"] == "8"  # admitted on the limits
    # Sent (nothing left in the outgoing buffer) and not yet answered when signing began.
    assert signings == [{"in_flight": 1, "unsent": 0}]


def test_a_key_over_its_limit_reaches_no_upstream_and_is_not_signed_for_again(gateway, backend, signings):
    _key, secret = make_key(f"refused-{backend}", rpm_limit=1)
    assert post(gateway, secret, chat_body("the one allowed")).status_code == 200
    since = gateway.emulator.last_seq()
    signings.clear()
    first = post(gateway, secret, chat_body("over"))
    assert first.status_code == 429 and first.json()["error"]["code"] == "rate_limit_exceeded", first.text
    assert len(signings) == 1  # signed beside the reservation, then dropped unsent
    again = post(gateway, secret, chat_body("still over"))
    assert again.status_code == 429
    assert len(signings) == 1  # refused a moment ago: checked before any signing
    assert gateway.emulator.ledger(since) == []  # neither refused call left the gateway


def test_an_admission_still_pending_when_the_call_ends_is_awaited():
    async def scenario():
        done = []

        async def admit():
            await asyncio.sleep(0.01)
            done.append("reserved")

        await CallContext.end_admission(SimpleNamespace(admission=asyncio.ensure_future(admit())))
        return done

    assert asyncio.run(scenario()) == ["reserved"]  # so the call's record settles what it reserved


def test_a_refusal_nobody_awaited_is_not_reported_as_lost(caplog):
    async def scenario():
        async def refused():
            raise limits.LimitExceeded("over", type="requests", code="rate_limit_exceeded", headers={})

        task = asyncio.ensure_future(refused())
        await asyncio.sleep(0)
        await CallContext.end_admission(SimpleNamespace(admission=task))
        del task

    asyncio.run(scenario())
    assert "exception was never retrieved" not in caplog.text


@needs_redis
def test_a_busy_process_reserves_before_signing_so_its_command_leaves_with_the_others(gateway, signings, monkeypatch):
    _key, secret = make_key("busy", rpm_limit=10, tpm_limit=10**7)
    post(gateway, secret, chat_body("warm the connection"))
    monkeypatch.setattr(limits, "link_idle", lambda: False)  # as under load: other calls' commands in flight
    signings.clear()
    r = post(gateway, secret, chat_body("hello"))
    assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == "8", r.text
    assert signings == [{"in_flight": 0, "unsent": 0}]  # answered before the signing began
