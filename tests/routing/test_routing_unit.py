"""Route ordering, circuit breakers and backoff, without the network."""

import random
from collections import Counter
from dataclasses import replace
from decimal import Decimal
from types import MappingProxyType

import pytest

from api import routing
from models_registry.catalog import CredentialSpec, DeploymentSpec, ModelEntry, RouteSpec

pytestmark = pytest.mark.smoke


def spec(name, region="us-chicago-1", **kw) -> DeploymentSpec:
    base = dict(
        id=1, name=name, kind="ondemand", region=region, compartment_id="c", model_id="m", endpoint_id="",
        deployment_url="", base_url="http://x", api_format="GENERIC",
        credential=CredentialSpec("environment", "API_KEY", "f", "DEFAULT"), supports_chat=True,
        supports_embeddings=False, supports_rerank=False, supports_tools=True, supports_streaming_tools=True,
        supports_vision=False, supports_reasoning=False, default_max_tokens=100, max_output_tokens=None,
        max_tokens_field="", param_defaults=MappingProxyType({}), unsupported_params="drop", force_non_stream=False,
        drain_on_disconnect=False, embed_truncate="END", price_input_per_m=Decimal(0),
        price_cached_input_per_m=Decimal(0), price_output_per_m=Decimal(0), price_reasoning_per_m=Decimal(0),
    )
    base.update(kw)
    return DeploymentSpec(**base)


def entry(routes, strategy="weighted") -> ModelEntry:
    return ModelEntry("m", "", 0, tuple(r.deployment for r in routes), tuple(routes), strategy)


@pytest.fixture(autouse=True)
def clean_state():
    routing.reset_state()
    yield
    routing.reset_state()


def test_priority_groups_come_in_order():
    e = entry([RouteSpec(spec("backup"), 1, 1), RouteSpec(spec("a"), 0, 1), RouteSpec(spec("b"), 0, 1)])
    names = [d.name for d in routing.candidates(e, rng=random.Random(1))]
    assert set(names[:2]) == {"a", "b"} and names[2] == "backup"


def test_weighted_random_follows_weights():
    e = entry([RouteSpec(spec("heavy"), 0, 3), RouteSpec(spec("light"), 0, 1)])
    rng = random.Random(7)
    firsts = Counter(routing.candidates(e, rng=rng)[0].name for _ in range(4000))
    assert 0.70 < firsts["heavy"] / 4000 < 0.80


def test_least_in_flight_and_lowest_latency():
    a, b = spec("a"), spec("b")
    e = entry([RouteSpec(a, 0, 1), RouteSpec(b, 0, 1)], strategy="least_in_flight")
    routing.state("a").in_flight = 3
    assert routing.candidates(e)[0].name == "b"
    e = replace(e, strategy="lowest_latency")
    routing.state("a").latency_ewma_ms, routing.state("b").latency_ewma_ms = 50.0, 500.0
    assert routing.candidates(e)[0].name == "a"


def test_regions_filter_everything_outside(settings):
    e = entry([RouteSpec(spec("us", "us-chicago-1"), 0, 1), RouteSpec(spec("eu", "eu-frankfurt-1"), 1, 1)])
    assert [d.name for d in routing.candidates(e, allowed_regions=frozenset({"eu-frankfurt-1"}))] == ["eu"]
    assert routing.candidates(e, allowed_regions=frozenset({"ap-osaka-1"})) == []


def test_breaker_opens_after_consecutive_failures_and_half_opens(settings):
    settings.BREAKER_FAILURES, settings.BREAKER_COOLDOWN_S = 3, 0.05
    a, b = spec("a"), spec("b")
    e = entry([RouteSpec(a, 0, 1), RouteSpec(b, 1, 1)])
    for _ in range(3):
        routing.record_result(a, ok=False)
    assert routing.is_open("a")
    assert [d.name for d in routing.candidates(e)] == ["b", "a"]  # open ones last, never dropped
    import time

    time.sleep(0.06)
    assert routing.breaker_allows(a)  # half-open: one probe may go
    routing.record_result(a, ok=True)
    assert not routing.is_open("a") and routing.candidates(e)[0].name == "a"


def test_breaker_opens_on_error_rate(settings):
    settings.BREAKER_FAILURES, settings.BREAKER_MIN_CALLS, settings.BREAKER_ERROR_RATE = 100, 10, 0.5
    a = spec("a")
    for i in range(10):
        routing.record_result(a, ok=(i % 2 == 0))
    assert routing.is_open("a")


def test_backoff_has_full_jitter_and_honours_retry_after(settings):
    settings.RETRY_BASE_DELAY_S, settings.RETRY_MAX_DELAY_S = 0.1, 2.0
    delays = [routing.backoff_delay(3) for _ in range(200)]
    assert 0 <= min(delays) < 0.2 and max(delays) <= 0.8
    assert routing.backoff_delay(0, "1.5") == 1.5
    assert routing.backoff_delay(0, "60") == 2.0


async def test_capacity_cap_rejects_or_queues():
    d = spec("dedicated", max_in_flight=1)
    async with routing.Slot(d):
        with pytest.raises(routing.CapacityFull):
            async with routing.Slot(d):
                pass
    queued = spec("queued", max_in_flight=1, queue_timeout_s=0.05)
    async with routing.Slot(queued):
        with pytest.raises(routing.CapacityFull):
            async with routing.Slot(queued):
                pass
    async with routing.Slot(queued):
        assert routing.state("queued").in_flight == 1


def test_the_breaker_window_forgets_old_calls():
    """Successes used to pile up in the window forever (a leak of ~70 bytes per request): now only the calls of
    the last window are kept, and the error rate counts only them."""
    s = routing.DeploymentState()
    for i in range(10_000):  # 10,000 calls over 100 s, one failure in ten
        s.add(i * 0.01, ok=i % 10 != 0, window_s=30.0)
    assert len(s.window) <= 3_001
    rate, calls = s.error_rate(100.0, 30.0)
    assert calls == len(s.window) and abs(rate - 0.1) < 0.01
    assert s.error_rate(1_000.0, 30.0) == (0.0, 0) and s.window_failures == 0
