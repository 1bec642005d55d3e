"""Fixtures for the limits tests: both backends, two gateway processes, Redis clean-up."""

from __future__ import annotations

import pytest

from .helpers import REDIS, wait_ready


@pytest.fixture(scope="session", autouse=True)
def _drop_redis_counters():
    """Counters live under a per-database prefix; drop this run's when it ends."""
    yield
    if not REDIS:
        return
    import redis

    from usage.limits import _REDIS

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(match=_REDIS.prefix() + "*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(params=["database", "redis"])
def backend(request, settings):
    """Run a test on the database backend, and on Redis when there is one."""
    if request.param == "redis":
        if not REDIS:
            pytest.skip("needs REDIS_URL: Redis is where the Lua scripts run")
        settings.REDIS_URL = REDIS
    else:
        settings.REDIS_URL = ""
    return request.param


@pytest.fixture
def two_gateways(gateway, gateway_process):
    """Base URLs of the in-process gateway and a second `manage.py serve` process, both ready."""
    urls = [gateway.base_url, gateway_process.base_url]
    for url in urls:
        wait_ready(url, gateway.key)
    return urls
