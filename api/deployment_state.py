"""What this process knows about each deployment, read from api/routing.py for the admin's state page.

A read-only snapshot: it copies the routing state rather than pruning it, so reading it from the
admin's worker thread never races the event loop that updates it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings

from . import routing


@dataclass(frozen=True)
class DeploymentRow:
    name: str
    kind: str
    region: str
    enabled: bool
    breaker: str  # closed | open | half-open
    open_until: datetime | None  # wall-clock end of the cool-down, while open
    opened_elsewhere: bool  # the opening was heard from another process through Redis
    consecutive_failures: int
    calls: int  # in the breaker's window
    error_rate: float | None  # None without calls in the window
    latency_ewma_ms: float | None
    in_flight: int


def breaker_status(name: str, now: float | None = None) -> tuple[str, float, bool]:
    """(closed | open | half-open, monotonic deadline of the cool-down or 0, opened through Redis)."""
    now = time.monotonic() if now is None else now
    s = routing._states.get(name)
    local = s.open_until if s is not None else 0.0
    shared = routing._shared_open.get(name, 0.0)
    deadline = max(local, shared)
    if deadline > now:
        return "open", deadline, shared > local
    if deadline:
        return "half-open", 0.0, False  # cool-down over: the next call tests the deployment
    return "closed", 0.0, False


def deployment_row(name: str, *, kind: str = "", region: str = "", enabled: bool = True,
                   now: float | None = None) -> DeploymentRow:
    now = time.monotonic() if now is None else now
    s = routing._states.get(name) or routing.DeploymentState()
    breaker, deadline, elsewhere = breaker_status(name, now)
    window = [ok for t, ok in list(s.window) if now - t <= settings.BREAKER_WINDOW_S]
    failures = sum(1 for ok in window if not ok)
    open_until = datetime.now(UTC) + timedelta(seconds=deadline - now) if deadline else None
    return DeploymentRow(
        name=name, kind=kind, region=region, enabled=enabled, breaker=breaker, open_until=open_until,
        opened_elsewhere=elsewhere, consecutive_failures=s.consecutive_failures, calls=len(window),
        error_rate=failures / len(window) if window else None, latency_ewma_ms=s.latency_ewma_ms,
        in_flight=s.in_flight,
    )


def snapshot(deployments) -> list[DeploymentRow]:
    """One row per deployment (objects with name, kind, region, enabled), in the order given."""
    now = time.monotonic()
    return [deployment_row(d.name, kind=d.kind, region=d.region, enabled=d.enabled, now=now) for d in deployments]
