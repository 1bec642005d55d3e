"""Nothing accepted is lost: SIGTERM under load, SIGKILL with Redis."""

import asyncio
import os
import signal
import time

import httpx
import pytest
from django.conf import settings

from tests.conftest import GatewayProcess
from usage.keys import api_key_create
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "meta.llama-3.3-70b-instruct"


def start_process(oci_emulator, **extra) -> GatewayProcess:
    from models_registry.services import models_import

    models_import(source="tests", text=f"""
- region: us-chicago-1
  compartment_id: {oci_emulator.compartment_id}
  models: {{ondemand: [{{name: {MODEL}, model_id: {MODEL}}}]}}
""")
    return GatewayProcess({
        "OCI_CONFIG_FILE": oci_emulator.config_file, "OCI_CONFIG_PROFILE": oci_emulator.profile,
        "OCI_GENAI_ENDPOINT": oci_emulator.base_url, "OCI_REGION": "us-chicago-1",
        "OCI_COMPARTMENT": oci_emulator.compartment_id, **extra,
    }).start()


async def fire(base_url: str, key: str, count: int, prompt: str, *, stop_after: float | None = None, proc=None):
    """Send `count` concurrent chat requests; return the request ids of those answered 200 in full."""
    done: list[str] = []

    async def one(client):
        try:
            response = await client.post(base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                         json={"model": MODEL, "messages": [{"role": "user", "content": prompt}]})
        except httpx.HTTPError:
            return
        if response.status_code == 200 and response.json()["choices"]:
            done.append(response.headers["x-request-id"])

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=count)) as client:
        tasks = [asyncio.ensure_future(one(client)) for _ in range(count)]
        if stop_after is not None:
            await asyncio.sleep(stop_after)
            proc()
        await asyncio.gather(*tasks)
    return done


def stored(ids) -> set[str]:
    return set(UsageRecord.objects.filter(request_id__in=ids).values_list("request_id", flat=True))


def test_sigterm_under_load_loses_no_record(oci_settings):
    _key, secret = api_key_create(name="sigterm")
    proc = start_process(oci_settings, REDIS_URL="", USAGE_FLUSH_SECONDS="30")  # nothing flushed before the end
    answered = asyncio.run(fire(proc.base_url, secret, 60, "slow [[emulator: latency_ms=400]]", stop_after=0.2,
                                proc=lambda: proc.proc.send_signal(signal.SIGTERM)))
    proc.proc.wait(timeout=60)
    assert len(answered) >= 30  # in-flight requests finished during the graceful shutdown
    assert stored(answered) == set(answered)


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
def test_sigkill_with_redis_loses_no_record(oci_settings, monkeypatch):
    _key, secret = api_key_create(name="sigkill")
    proc = start_process(oci_settings, USAGE_FLUSH_SECONDS="30", USAGE_CLAIM_IDLE_MS="200")
    answered = asyncio.run(fire(proc.base_url, secret, 40, "hello"))
    os.kill(proc.proc.pid, signal.SIGKILL)  # no shutdown, no flush
    proc.proc.wait(timeout=10)
    assert len(answered) == 40
    from usage import recorder as recorder_module

    # The test's consumer claims what the dead one read but never stored after the same short idle time as the
    # process was given (the module reads USAGE_CLAIM_IDLE_MS at import: 15 s here otherwise). Killed between
    # reading and acknowledging, the process leaves entries that only a claim recovers.
    monkeypatch.setattr(recorder_module, "CLAIM_IDLE_MS", 200)
    monkeypatch.setattr(recorder_module, "CLAIM_EVERY_S", 0.0)  # and claims on every pass below
    time.sleep(0.3)  # past the claim delay: what the dead process had read but not stored is claimable

    consumer = recorder_module.UsageRecorder()  # another process's consumer, here the test's own

    async def drain_once():
        try:
            await consumer._drain_stream_once(block_ms=100)
        finally:
            if consumer._redis is not None:
                await consumer._redis.aclose()
                consumer._redis = None

    from asgiref.sync import async_to_sync

    for _ in range(20):
        if stored(answered) == set(answered):
            break
        async_to_sync(drain_once)()
    assert stored(answered) == set(answered)
