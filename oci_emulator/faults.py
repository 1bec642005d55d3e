"""Fault injection: a global rule set through ``POST /_emulator/faults`` and per-request prompt
directives (``[[emulator: ...]]``). Both resolve to a :class:`Fault` for one request.

Knobs: ``status`` (e.g. 429, 400, 500, 503) applied to a fraction ``rate`` of matching requests
(deterministic: exactly floor(n * rate) of the first n), ``latency_ms`` before the first byte,
``interval_ms`` between stream events, ``cut_after`` (drop the connection after N events; for a
non-streamed answer, after the headers and N bytes of body), ``hang`` (send nothing until the client
goes away), ``keep_open`` (keep a stream open after its last event until the client closes it).
A global rule may be narrowed with ``path`` (substring of the path) and ``model`` (exact model id),
and limited to the next ``count`` matching requests.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

RULE_KEYS = {"status", "rate", "latency_ms", "interval_ms", "cut_after", "hang", "keep_open", "path", "model",
             "count", "retry_after"}


@dataclass
class Fault:
    status: int | None = None
    latency_ms: float = 0.0
    interval_ms: float = 0.0
    cut_after: int | None = None
    hang: bool = False
    keep_open: bool = False
    retry_after: int | None = None
    source: str | None = None  # "rule" | "directive"

    def active(self) -> bool:
        return bool(self.status or self.latency_ms or self.interval_ms or self.cut_after is not None
                    or self.hang or self.keep_open)

    def describe(self) -> str | None:
        if not self.active():
            return None
        parts = [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                 if f.name != "source" and getattr(self, f.name) not in (None, False, 0, 0.0)]
        return f"{self.source}: " + " ".join(parts)


class FaultRule:
    def __init__(self, spec: dict):
        unknown = set(spec) - RULE_KEYS
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        self.spec = dict(spec)
        self.status = int(spec["status"]) if spec.get("status") is not None else None
        self.rate = float(spec.get("rate", 1.0))
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        self.latency_ms = float(spec.get("latency_ms") or 0)
        self.interval_ms = float(spec.get("interval_ms") or 0)
        self.cut_after = int(spec["cut_after"]) if spec.get("cut_after") is not None else None
        self.hang = bool(spec.get("hang"))
        self.keep_open = bool(spec.get("keep_open"))
        self.retry_after = spec.get("retry_after")
        self.path = spec.get("path")
        self.model = spec.get("model")
        self.count = int(spec["count"]) if spec.get("count") is not None else None
        self.seen = 0
        self.fired = 0

    def matches(self, path: str, model: str | None) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.path and self.path not in path:
            return False
        if self.model and self.model != model:
            return False
        return True

    def take(self) -> Fault:
        if self.count is not None:
            self.count -= 1
        self.seen += 1
        status = None
        if self.status is not None and math.floor(self.seen * self.rate + 1e-9) > self.fired:
            self.fired += 1
            status = self.status
        return Fault(status=status, latency_ms=self.latency_ms, interval_ms=self.interval_ms,
                     cut_after=self.cut_after, hang=self.hang, keep_open=self.keep_open,
                     retry_after=self.retry_after, source="rule")

    def as_dict(self) -> dict:
        out = dict(self.spec)
        out.update({"seen": self.seen, "fired": self.fired, "remaining": self.count})
        return out


def from_directives(d: dict) -> Fault:
    def num(key, default=0.0):
        try:
            return float(d.get(key, default))
        except (TypeError, ValueError):
            return default

    status = d.get("status")
    cut = d.get("cut_after")
    return Fault(
        status=int(status) if isinstance(status, int) else None,
        latency_ms=num("latency_ms"), interval_ms=num("interval_ms"),
        cut_after=int(cut) if isinstance(cut, int) else None,
        hang=bool(d.get("hang")), keep_open=bool(d.get("keep_open")),
        retry_after=d.get("retry_after") if isinstance(d.get("retry_after"), int) else None,
        source="directive",
    )


def merge(rule: Fault | None, directive: Fault | None) -> Fault:
    """Directive values win over the global rule's."""
    if rule is None:
        return directive or Fault()
    if directive is None or not directive.active():
        return rule
    out = asdict(rule)
    for key, value in asdict(directive).items():
        if key != "source" and value not in (None, False, 0, 0.0):
            out[key] = value
    out["source"] = "rule+directive"
    return Fault(**out)
