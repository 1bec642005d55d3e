"""What one `/v1` call carries from authentication to its usage record."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from decimal import Decimal

from models_registry.catalog import DeploymentSpec
from usage.auth import KeyPrincipal
from usage.recorder import UsageEvent, recorder

from .http import ApiRequest

_MILLION = Decimal(1_000_000)


@dataclass(slots=True)
class CallContext:
    request: ApiRequest
    principal: KeyPrincipal
    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    public_model: str = ""
    deployment: DeploymentSpec | None = None
    streamed: bool = False
    status: int = 200
    error_type: str = ""
    usage: dict | None = None  # OpenAI-shaped usage
    usage_source: str = "none"
    ttft_ms: int | None = None
    upstream_request_id: str = ""
    recorded: bool = False

    def mark_first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = int((time.perf_counter() - self.started) * 1000)

    def fail(self, status: int, error_type: str) -> None:
        self.status, self.error_type = status, error_type

    def record(self) -> None:
        """Queue the call's usage record without waiting (error and disconnect paths)."""
        event = self._event()
        if event is not None:
            recorder.record(event)

    async def record_durable(self) -> None:
        """Hand the record over before the response completes (durable in Redis when configured)."""
        event = self._event()
        if event is not None:
            await recorder.record_durable(event)

    def _event(self) -> UsageEvent | None:
        """The call's one usage record, or None once it has been handed over."""
        if self.recorded:
            return None
        self.recorded = True
        usage = self.usage or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
        d = self.deployment
        return UsageEvent(
            request_id=self.request.request_id,
            endpoint=self.endpoint,
            status=self.status,
            key_id=self.principal.id,
            team_id=self.principal.team_id,
            public_model=self.public_model,
            deployment=d.name if d else "",
            region=d.region if d else "",
            error_type=self.error_type,
            streamed=self.streamed,
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=int(usage.get("total_tokens") or prompt + completion),
            cached_tokens=cached,
            reasoning_tokens=reasoning,
            usage_source=self.usage_source if (prompt or completion) else "none",
            cost_usd=cost(d, prompt, completion, cached, reasoning) if d else Decimal(0),
            latency_ms=int((time.perf_counter() - self.started) * 1000),
            ttft_ms=self.ttft_ms,
            upstream_request_id=self.upstream_request_id,
            client_ip=self.request.client_ip,
            user_agent=self.request.headers.get("user-agent", ""),
            metadata=self.principal.metadata,
        )


def cost(d: DeploymentSpec, prompt: int, completion: int, cached: int, reasoning: int) -> Decimal:
    """Cached input tokens are billed at their own price; reasoning tokens at theirs when set."""
    uncached = max(prompt - cached, 0)
    reasoning_price = d.price_reasoning_per_m or d.price_output_per_m
    visible = max(completion - reasoning, 0)
    total = (
        uncached * d.price_input_per_m
        + cached * d.price_cached_input_per_m
        + visible * d.price_output_per_m
        + reasoning * reasoning_price
    )
    return total / _MILLION


def estimate_prompt_tokens(text_chars: int) -> int:
    """Tokenizer-free prompt estimate for cut streams, biased low so chargeback never over-bills.

    English runs about 4 characters per token; dividing by 6 undercounts nearly every language.
    """
    return math.floor(text_chars / 6)
