"""Helpers for the limits tests: keys with limits, a concurrent hammer, SSE answers."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import orjson
import pytest

from usage.keys import api_key_create
from usage.models import ApiKey, Team

MODEL = "meta.llama-3.3-70b-instruct"
REDIS = os.environ.get("REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS, reason="needs REDIS_URL: Redis is where the Lua scripts run")


def make_key(name: str, team: Team | None = None, **limits) -> tuple[ApiKey, str]:
    key, secret = api_key_create(name=name, team=team)
    for field, value in limits.items():
        setattr(key, field, value)
    key.save()  # bumps the keys version: every process reloads its principals
    return key, secret


def chat_body(content: str, *, stream: bool = False, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": stream, **extra}


def wait_ready(base_url: str, secret: str, timeout: float = 10.0) -> None:
    """Until a process serves the test catalogue (its caches follow the database within a second or two)."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.post(base_url + "/v1/chat/completions", json=chat_body("ping", max_tokens=1), timeout=10,
                       headers={"Authorization": f"Bearer {secret}"})
        if r.status_code == 200:
            return
        assert time.monotonic() < deadline, f"{base_url} not ready: {r.status_code} {r.text[:200]}"
        time.sleep(0.1)


class Answer:
    """One call's outcome: status, headers, and for streams the decoded events."""

    def __init__(self, status: int, headers: httpx.Headers, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body
        self.events: list = []
        if headers.get("content-type", "").startswith("text/event-stream"):
            for line in body.decode().splitlines():
                if line.startswith("data: "):
                    data = line[6:]
                    self.events.append(data if data == "[DONE]" else orjson.loads(data))

    def json(self) -> dict:
        return orjson.loads(self.body)

    @property
    def content_chunks(self) -> int:
        return sum(1 for e in self.events if isinstance(e, dict) and e.get("choices")
                   and e["choices"][0].get("delta", {}).get("content"))


def hammer(calls: list[tuple], timeout: float = 60.0) -> list[Answer]:
    """Send every (base URL, secret, body[, wall-clock time to send at]) concurrently; the answers in order."""

    async def run() -> list[Answer]:
        limits = httpx.Limits(max_connections=len(calls) + 10, max_keepalive_connections=len(calls) + 10)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            start = asyncio.Event()

            async def one(url: str, secret: str, body: dict, at: float | None = None) -> Answer:
                await start.wait()
                if at is not None:
                    await asyncio.sleep(max(0.0, at - time.time()))
                r = await client.post(url + "/v1/chat/completions", json=body,
                                      headers={"Authorization": f"Bearer {secret}"})
                return Answer(r.status_code, r.headers, r.content)

            tasks = [asyncio.create_task(one(*c)) for c in calls]
            await asyncio.sleep(0)
            start.set()
            return await asyncio.gather(*tasks)

    return asyncio.run(run())


def billed(gateway, answers: list[Answer], since: int) -> int:
    """Tokens the (emulated) OCI billed for the calls behind `answers`: the provider's side of the account."""
    ids = {a.headers.get("x-request-id") for a in answers}
    entries = gateway.emulator.ledger(since)
    return sum((e.get("usage") or {}).get("totalTokens") or 0 for e in entries if e.get("opcRequestId") in ids)


def usage_rows(gateway, count: int, timeout: float = 15.0, **filters) -> list:
    """The usage records matching `filters`, once `count` of them are stored (both processes write them)."""
    from usage.models import UsageRecord

    deadline = time.monotonic() + timeout
    while True:
        gateway.usage_records(0, timeout=0)  # flushes this process's queue
        rows = list(UsageRecord.objects.filter(**filters))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)
