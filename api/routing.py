"""Choosing a deployment for each attempt: priorities, strategies, circuit breakers, capacity.

A public model routes to deployments in priority groups; a lower group is used only when every
deployment of the higher ones is unavailable (open breaker, full, outside the key's regions). Within a
group the model's strategy orders them: weighted random, fewest in flight, or lowest recent latency.
State is per process; breaker openings are also shared through Redis when it is configured, so one
replica's discovery that a region is down spares the others the same failures.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

from models_registry.catalog import DeploymentSpec, ModelEntry, RouteSpec

log = logging.getLogger("gateway.routing")

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass
class DeploymentState:
    """What this process knows about one deployment."""

    in_flight: int = 0
    latency_ewma_ms: float | None = None
    consecutive_failures: int = 0
    window: collections.deque = field(default_factory=collections.deque)  # (time, ok) of recent calls, oldest first
    window_failures: int = 0  # of the calls in `window`
    open_until: float = 0.0
    half_open_probe: bool = False

    def add(self, now: float, ok: bool, window_s: float) -> None:
        """Count one call; calls older than the window leave as new ones come (memory stays bounded)."""
        self.window.append((now, ok))
        if not ok:
            self.window_failures += 1
        self._forget_before(now - window_s)

    def _forget_before(self, cutoff: float) -> None:
        window = self.window
        while window and window[0][0] < cutoff:
            _t, ok = window.popleft()
            if not ok:
                self.window_failures -= 1

    def error_rate(self, now: float, window_s: float) -> tuple[float, int]:
        self._forget_before(now - window_s)
        calls = len(self.window)
        return (self.window_failures / calls if calls else 0.0), calls


_states: dict[str, DeploymentState] = {}
_slots: dict[str, asyncio.Semaphore] = {}


def state(name: str) -> DeploymentState:
    s = _states.get(name)
    if s is None:
        s = _states[name] = DeploymentState()
    return s


def reset_state() -> None:
    _states.clear()
    _slots.clear()
    _shared_open.clear()


# --- circuit breaker -----------------------------------------------------------------------------
def breaker_allows(d: DeploymentSpec, now: float | None = None) -> bool:
    """Closed, or half-open with no probe in flight (one request tests a deployment after its cool-down)."""
    now = time.monotonic() if now is None else now
    s = state(d.name)
    open_until = max(s.open_until, _shared_open.get(d.name, 0.0))
    if now >= open_until:
        if open_until and s.half_open_probe:
            return False  # someone is already probing
        return True
    return False


def record_result(d: DeploymentSpec, *, ok: bool, latency_ms: float | None = None) -> None:
    now = time.monotonic()
    s = state(d.name)
    s.add(now, ok, settings.BREAKER_WINDOW_S)
    if ok:
        s.consecutive_failures = 0
        s.open_until = 0.0
        s.half_open_probe = False
        _shared_open.pop(d.name, None)
        if latency_ms is not None:
            s.latency_ewma_ms = latency_ms if s.latency_ewma_ms is None else 0.8 * s.latency_ewma_ms + 0.2 * latency_ms
        return
    s.consecutive_failures += 1
    rate, calls = s.error_rate(now, settings.BREAKER_WINDOW_S)
    if s.consecutive_failures >= settings.BREAKER_FAILURES or (
        calls >= settings.BREAKER_MIN_CALLS and rate >= settings.BREAKER_ERROR_RATE
    ):
        if s.open_until <= now:
            log.warning("circuit opened for deployment %s (%d failures in a row, %.0f%% errors)", d.name,
                        s.consecutive_failures, rate * 100)
        s.open_until = now + settings.BREAKER_COOLDOWN_S
        s.half_open_probe = False
        _publish_open(d.name, settings.BREAKER_COOLDOWN_S)


def is_open(name: str) -> bool:
    now = time.monotonic()
    return max(state(name).open_until, _shared_open.get(name, 0.0)) > now


# Breaker openings heard from other processes (through Redis): deployment → monotonic deadline.
_shared_open: dict[str, float] = {}
_redis = None


def _publish_open(name: str, seconds: float) -> None:
    if not settings.REDIS_URL:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_set_shared(name, seconds))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


_pending: set[asyncio.Task] = set()


async def _client():
    global _redis
    if _redis is None:
        import redis.asyncio as aioredis

        _redis = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=1)
    return _redis


async def _set_shared(name: str, seconds: float) -> None:
    try:
        await (await _client()).set(f"{settings.REDIS_KEY_PREFIX}breaker:{name}", "open", px=int(seconds * 1000))
    except Exception as exc:
        log.warning("could not share breaker state through Redis: %s", exc)


async def refresh_shared(names: Iterable[str]) -> None:
    """Read other processes' open breakers for these deployments (one MGET-like round trip)."""
    if not settings.REDIS_URL:
        return
    names = list(names)
    try:
        client = await _client()
        async with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.pttl(f"{settings.REDIS_KEY_PREFIX}breaker:{name}")
            ttls = await pipe.execute()
    except Exception as exc:
        log.warning("could not read shared breaker state: %s", exc)
        return
    now = time.monotonic()
    for name, ttl in zip(names, ttls, strict=True):
        if ttl and ttl > 0:
            _shared_open[name] = now + ttl / 1000
        else:
            _shared_open.pop(name, None)


_last_refresh = 0.0


async def refresh_shared_throttled(names: list[str]) -> None:
    """Other processes' open breakers, read at most once a second per process (off the common path)."""
    global _last_refresh
    if not settings.REDIS_URL:
        return
    now = time.monotonic()
    if now - _last_refresh < 1.0:
        return
    _last_refresh = now
    await refresh_shared(names)


# --- ordering ------------------------------------------------------------------------------------
def _order_group(routes: list[RouteSpec], strategy: str, rng: random.Random) -> list[RouteSpec]:
    if strategy == "least_in_flight":
        return sorted(routes, key=lambda r: (state(r.deployment.name).in_flight, rng.random()))
    if strategy == "lowest_latency":
        # Unmeasured deployments first, so each gets measured.
        return sorted(routes, key=lambda r: (state(r.deployment.name).latency_ewma_ms or -1.0, rng.random()))
    # Weighted random without replacement (Efraimidis–Spirakis keys).
    return sorted(routes, key=lambda r: rng.random() ** (1.0 / max(r.weight, 1)), reverse=True)


def candidates(entry: ModelEntry, *, allowed_regions: frozenset[str] = frozenset(),
               rng: random.Random | None = None) -> list[DeploymentSpec]:
    """Deployments to try, best first: by priority group, strategy within a group; open breakers last."""
    rng = rng or random
    routes = list(entry.routes) or [RouteSpec(d, 0, 1) for d in entry.deployments]
    if allowed_regions:
        routes = [r for r in routes if r.deployment.region in allowed_regions]
    ordered: list[RouteSpec] = []
    for priority in sorted({r.priority for r in routes}):
        group = [r for r in routes if r.priority == priority]
        ordered += _order_group(group, entry.strategy, rng)
    now = time.monotonic()
    available: list[DeploymentSpec] = []
    # Open-circuited deployments stay at the end: when everything is open, trying one beats refusing.
    tripped: list[DeploymentSpec] = []
    for r in ordered:  # one breaker check per route (bench/routing_bench.py: the cost grows with the routes)
        (available if breaker_allows(r.deployment, now) else tripped).append(r.deployment)
    return available + tripped


# --- capacity ------------------------------------------------------------------------------------
class CapacityFull(Exception):
    pass


class Slot:
    """An in-flight slot on a deployment (capped for dedicated clusters)."""

    def __init__(self, d: DeploymentSpec) -> None:
        self.d = d
        self._semaphore: asyncio.Semaphore | None = None
        self.started = time.monotonic()

    async def __aenter__(self) -> Slot:
        d = self.d
        if d.max_in_flight:
            sem = _slots.get(d.name)
            if sem is None:
                sem = _slots[d.name] = asyncio.Semaphore(d.max_in_flight)
            if sem.locked() and not d.queue_timeout_s:
                raise CapacityFull(d.name)
            try:
                await asyncio.wait_for(sem.acquire(), timeout=d.queue_timeout_s or None)
            except TimeoutError:
                raise CapacityFull(d.name) from None
            self._semaphore = sem
        s = state(d.name)
        s.in_flight += 1
        if s.open_until and time.monotonic() >= s.open_until:
            s.half_open_probe = True
        return self

    async def __aexit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        state(self.d.name).in_flight -= 1
        if self._semaphore is not None:
            self._semaphore.release()
            self._semaphore = None


def backoff_delay(attempt: int, retry_after: str | None = None) -> float:
    """Exponential backoff with full jitter; a server's Retry-After wins when it is given."""
    if retry_after:
        try:
            return min(float(retry_after), settings.RETRY_MAX_DELAY_S)
        except ValueError:
            pass
    return random.uniform(0, min(settings.RETRY_MAX_DELAY_S, settings.RETRY_BASE_DELAY_S * (2**attempt)))
