"""Routing and resilience against the emulator's fault injection (issue: routing and resilience)."""

import asyncio
import time

import httpx
import pytest

from api import routing
from models_registry.models import Deployment, PublicModel, Route
from usage.keys import api_key_create

US_MODEL, EU_MODEL = "meta.llama-3.3-70b-instruct", "meta.llama-4-maverick-17b-128e-instruct-fp8"


@pytest.fixture(autouse=True)
def fresh_routing_state():
    routing.reset_state()
    yield
    routing.reset_state()


@pytest.fixture
def two_regions(gateway):
    """A public model served in two 'regions' (told apart at the emulator by their model ids)."""
    compartment = gateway.emulator.compartment_id

    def deployment(name, region, model_id, **kw):
        return Deployment.objects.create(name=name, kind="ondemand", region=region, compartment_id=compartment,
                                         model_id=model_id, api_format="GENERIC", **kw)

    us = deployment("llama-us", "us-chicago-1", US_MODEL)
    eu = deployment("llama-eu", "eu-frankfurt-1", EU_MODEL)
    pm = PublicModel.objects.create(name="llama", retry_budget=2)
    Route.objects.create(public_model=pm, deployment=us, priority=0, weight=1)
    Route.objects.create(public_model=pm, deployment=eu, priority=0, weight=1)
    return pm, us, eu


def chat(gateway, content="hello", key=None, stream=False, model="llama"):
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}
    return httpx.post(gateway.api_base + "/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {key or gateway.key}"})


def calls_to(gateway, model_id, since=0):
    return [e for e in gateway.emulator.ledger(since) if e.get("model") == model_id]


def test_region_answering_429_is_routed_around_and_its_breaker_opens(gateway, two_regions, settings):
    settings.RETRY_BASE_DELAY_S = 0.001
    gateway.emulator.set_faults(status=429, model=US_MODEL)

    async def many():
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=20)) as client:
            async def one():
                r = await client.post(gateway.api_base + "/chat/completions",
                                      headers={"Authorization": f"Bearer {gateway.key}"},
                                      json={"model": "llama", "messages": [{"role": "user", "content": "hi"}]})
                return r.status_code
            return await asyncio.gather(*(one() for _ in range(200)))

    statuses = asyncio.run(many())
    assert statuses.count(200) == 200
    assert routing.is_open("llama-us")
    us_calls = len(calls_to(gateway, US_MODEL))
    assert us_calls < 60  # once open, the failing region is skipped instead of tried every time


def test_hanging_region_stays_under_the_deadline(gateway, two_regions, settings):
    _pm, us, _eu = two_regions
    us.first_byte_timeout_s = 0.3
    us.save()
    settings.RETRY_BASE_DELAY_S = 0.001
    gateway.emulator.set_faults(hang=True, model=US_MODEL)
    for _ in range(6):
        start = time.monotonic()
        response = chat(gateway)
        assert response.status_code == 200
        assert time.monotonic() - start < 2.0  # first-byte timeout 0.3 s + the healthy region


def test_short_503_burst_is_invisible(gateway, settings):
    settings.RETRY_BASE_DELAY_S = 0.001
    gateway.emulator.set_faults(status=503, count=2)
    response = chat(gateway, model=US_MODEL)  # one deployment, default retry budget 2
    assert response.status_code == 200
    attempts = [e for e in gateway.emulator.ledger(0) if e["path"].endswith("/actions/chat")]
    assert [e["status"] for e in attempts] == [503, 503, 200]
    ids = [e["opcRequestId"] for e in attempts]
    assert ids[0] == response.headers["x-request-id"] and ids[1] == ids[0] + "-1"


def test_burst_longer_than_the_budget_is_reported(gateway, settings):
    settings.RETRY_BASE_DELAY_S = 0.001
    gateway.emulator.set_faults(status=503, count=5)
    response = chat(gateway, model=US_MODEL)
    assert response.status_code == 503 and response.json()["error"]["type"] == "upstream_unavailable"
    assert len(gateway.emulator.ledger(0)) == 3


def test_no_retry_after_a_stream_started_and_a_dead_stream_ends_cleanly(gateway, two_regions):
    with httpx.stream("POST", gateway.api_base + "/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {gateway.key}"},
                      json={"model": "llama", "stream": True,
                            "messages": [{"role": "user", "content": "long [[emulator: words=50 cut_after=4]]"}]}
                      ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and '"error"' in lines[-2]
    assert len(gateway.emulator.ledger(0)) == 1  # the cut stream was not retried


def test_eu_only_key_never_reaches_us_also_on_fallback(gateway, two_regions):
    pm, us, eu = two_regions
    # A fallback model that lives only in the US must not be used for an EU-only key either.
    small = PublicModel.objects.create(name="small-us")
    Route.objects.create(public_model=small, deployment=us)
    pm.fallback = small
    pm.save()
    _key, eu_key = api_key_create(name="eu-only")
    from usage.models import ApiKey

    ApiKey.objects.filter(name="eu-only").update(allowed_regions=["eu-frankfurt-1"])
    from models_registry import bus

    bus.bump("keys")
    since = gateway.emulator.last_seq()
    for _ in range(10):
        assert chat(gateway, key=eu_key).status_code == 200
    assert not calls_to(gateway, US_MODEL, since)
    # With the EU region failing, the EU-only key gets an error rather than a US answer.
    gateway.emulator.set_faults(status=503, model=EU_MODEL)
    response = chat(gateway, key=eu_key)
    assert response.status_code in (403, 503)
    assert not calls_to(gateway, US_MODEL, since)
    # A key allowed nowhere the model lives gets 403 region_not_allowed.
    ApiKey.objects.filter(name="eu-only").update(allowed_regions=["ap-osaka-1"])
    bus.bump("keys")
    response = chat(gateway, key=eu_key)
    assert response.status_code == 403 and response.json()["error"]["code"] == "region_not_allowed"


def test_fallback_model_answers_when_routes_are_exhausted(gateway, two_regions, settings):
    settings.RETRY_BASE_DELAY_S = 0.001
    pm, us, eu = two_regions
    small = PublicModel.objects.create(name="small")
    grok = Deployment.objects.create(name="grok", kind="ondemand", region="us-chicago-1",
                                     compartment_id=gateway.emulator.compartment_id, model_id="xai.grok-4")
    Route.objects.create(public_model=small, deployment=grok)
    pm.fallback = small
    pm.save()
    gateway.emulator.set_faults(status=503, path="/actions/chat", model=US_MODEL)
    Route.objects.filter(public_model=pm, deployment=eu).update(enabled=False)
    from models_registry import bus

    bus.bump("catalog")
    response = chat(gateway)
    assert response.status_code == 200
    assert response.headers["x-gateway-fallback-model"] == "small"
    assert response.headers["x-gateway-deployment"] == "grok"


def test_capacity_cap_answers_429_or_queues(gateway, settings):
    from models_registry.models import Deployment as D

    D.objects.filter(model_id=US_MODEL).update(max_in_flight=1, queue_timeout_s=0)
    from models_registry import bus

    bus.bump("catalog")

    async def two_at_once():
        async with httpx.AsyncClient(timeout=30) as client:
            async def one(delay):
                await asyncio.sleep(delay)
                return await client.post(
                    gateway.api_base + "/chat/completions", headers={"Authorization": f"Bearer {gateway.key}"},
                    json={"model": US_MODEL,
                          "messages": [{"role": "user", "content": "x [[emulator: latency_ms=600]]"}]})
            return await asyncio.gather(one(0), one(0.15))

    first, second = asyncio.run(two_at_once())
    assert first.status_code == 200
    assert second.status_code == 429 and second.json()["error"]["code"] == "capacity_exceeded"
