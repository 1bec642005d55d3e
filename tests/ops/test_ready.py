"""GET /ready: database, catalog, and an unopened route for every model (gateway_project/asgi.py, api/readiness.py)."""

import time

import httpx
import openai
import pytest

from api import readiness, routing
from models_registry.models import Route

US_MODEL = "meta.llama-3.3-70b-instruct"


@pytest.fixture(autouse=True)
def fresh_routing_state():
    routing.reset_state()
    yield
    routing.reset_state()
    from django.conf import settings

    if settings.REDIS_URL:  # breaker openings published for other processes: not for the next tests
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(f"{settings.REDIS_KEY_PREFIX}breaker:*"):
            client.delete(key)


def ready(gateway) -> httpx.Response:
    return httpx.get(gateway.base_url + "/ready", timeout=10)


def test_ready_when_database_catalog_and_routes_are_fine(gateway):
    response = ready(gateway)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "catalog": "ok", "routes": "ok"}
    assert body["models"] >= 10
    assert response.headers["cache-control"] == "no-store"
    # No key needed, and liveness stays as it was.
    assert httpx.get(gateway.base_url + "/health", timeout=10).json() == {"status": "ok"}


def test_not_ready_when_the_database_is_unreachable(gateway, monkeypatch):
    from django.db import OperationalError

    def unreachable():
        raise OperationalError('connection to server at "10.9.8.7", port 5432 failed: password for user "gw"')

    monkeypatch.setattr(readiness, "_select_one", unreachable)
    response = ready(gateway)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready" and body["checks"]["database"] == "unreachable"
    assert "10.9.8.7" not in response.text and "password" not in response.text  # details go to the log only


def test_not_ready_when_the_database_does_not_answer_in_time(gateway, monkeypatch):
    monkeypatch.setattr(readiness, "DB_TIMEOUT_S", 0.1)
    monkeypatch.setattr(readiness, "_select_one", lambda: time.sleep(0.6))
    started = time.monotonic()
    response = ready(gateway)
    assert time.monotonic() - started < 0.5
    assert response.status_code == 503 and response.json()["checks"]["database"] == "timeout"
    time.sleep(0.6)  # let the slow check end before the next test asks again


def test_not_ready_while_every_route_of_a_model_is_open(gateway, settings):
    settings.RETRY_BASE_DELAY_S = 0.001
    settings.RETRY_MAX_DELAY_S = 0.001
    gateway.emulator.set_faults(status=429, model=US_MODEL)
    (deployment,) = [r.deployment.name for r in Route.objects.filter(public_model__name=US_MODEL)]
    client = gateway.openai()
    for _ in range(10):
        if routing.is_open(deployment):
            break
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model=US_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert routing.is_open(deployment)

    response = ready(gateway)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["checks"] == {"database": "ok", "catalog": "ok", "routes": "all_open"}
    assert body["models_all_open"] == [US_MODEL]

    # The cool-down over, the breaker is half-open: the model may be tried again, and the process is ready.
    routing.state(deployment).open_until = time.monotonic() - 1
    assert ready(gateway).status_code == 200


def test_a_model_with_one_open_route_of_two_stays_ready(gateway):
    from models_registry import bus
    from models_registry.models import Deployment, PublicModel

    compartment = gateway.emulator.compartment_id
    a = Deployment.objects.create(name="two-a", region="us-chicago-1", compartment_id=compartment, model_id=US_MODEL)
    b = Deployment.objects.create(name="two-b", region="us-chicago-1", compartment_id=compartment, model_id=US_MODEL)
    pm = PublicModel.objects.create(name="two-routes")
    Route.objects.create(public_model=pm, deployment=a)
    Route.objects.create(public_model=pm, deployment=b)
    bus.bump("catalog")
    routing.state("two-a").open_until = time.monotonic() + 60
    assert ready(gateway).status_code == 200
    routing.state("two-b").open_until = time.monotonic() + 60
    response = ready(gateway)
    assert response.status_code == 503 and response.json()["models_all_open"] == ["two-routes"]
