"""What one `/v1` call carries from authentication to its usage record."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal

from models_registry.catalog import DeploymentSpec
from usage import limits
from usage.auth import KeyPrincipal
from usage.recorder import UsageEvent, recorder

from .errors import GatewayError
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
    fallback_model: str = ""  # set when the requested model's routes were exhausted and its fallback answered
    reservation: limits.Reservation | None = None  # this call's share of its key's and team's limits
    admission: asyncio.Future | None = None  # `admit` running beside the signing (begin_admission)

    # --- limits (usage/limits.py): reserve before the upstream call, settle when the call is recorded ---
    async def admit(self, *, max_output: int | None, choices: int = 1, cuttable: bool = False) -> None:
        """Reserve the call on every limit of its key and team, or raise the 429 (503 if limits are down).

        `max_output`: the effective max output tokens (None: unknown, a default is assumed; 0: none, as for
        embeddings). `cuttable`: the call is an upstream stream the relay can stop when its budget runs out.
        """
        # Already admitted (by `governed`), or a context that never records (a batch's child call) and so
        # would never settle: nothing to take.
        if not self.principal.has_limits or self.reservation is not None or self.recorded:
            return
        d = self.deployment
        demand = limits.demand_for(
            body=self.request.body, max_output=max_output, choices=choices, cuttable=cuttable,
            price_in_per_m=d.price_input_per_m if d else 0,
            price_out_per_m=max(d.price_output_per_m, d.price_reasoning_per_m) if d else 0,
        )
        try:
            self.reservation = await limits.reserve(self.principal, demand)
        except limits.LimitExceeded as exc:
            raise GatewayError(exc.status, exc.message, type=exc.type, code=exc.code, headers=exc.headers) from None

    async def begin_admission(self, *, max_output: int | None, choices: int = 1, cuttable: bool = False) -> None:
        """`admit`, started so that its Redis round trip runs while the caller signs the upstream request.

        The caller waits for `self.admission` before sending (a refusal stops the call unsent) and calls
        `end_admission()` when its attempts are over. The call is admitted at once instead when the
        process is busy (the round trip is not dead time then, and its command is better sent with the
        others of the loop iteration) and when its key was refused a moment ago (hammering past a limit
        costs no signing).
        """
        if self.reservation is not None or self.admission is not None:
            return
        admit = self.admit(max_output=max_output, choices=choices, cuttable=cuttable)
        if not self.principal.has_limits or not limits.link_idle() or limits.refused_recently(self.principal):
            await admit
            return
        self.admission = asyncio.ensure_future(admit)
        await asyncio.sleep(0)  # the reservation runs up to its Redis command...
        limits.send_queued()  # ...which leaves now, not after the signing

    async def end_admission(self) -> None:
        """The attempts are over. An admission still on its way (the call ended unsent: capacity full, a bad
        request on a retry) is waited for, so that the call's record settles what it reserved; a refusal
        nobody awaited is not an error to log. Cancelled, it is cancelled too."""
        admission = self.admission
        if admission is None:
            return
        if not admission.done():
            if asyncio.current_task().cancelling():
                admission.cancel()
                return
            await asyncio.wait([admission])
        if not admission.cancelled():
            admission.exception()

    def limit_headers(self) -> dict[str, str]:
        return self.reservation.headers if self.reservation is not None else {}

    @property
    def output_allowance(self) -> int | None:
        """Output events a cut-able stream may relay on its reservation; None when no budget applies."""
        return self.reservation.allowance if self.reservation is not None else None

    async def extend_output(self, relayed: int) -> bool:
        """The stream has relayed past its allowance: hold more output on the budgets; False when none is left."""
        r = self.reservation
        if r is None or r.allowance is None:
            return True
        await limits.extend(r, max(256, r.out // 2))
        return relayed <= r.allowance

    def mark_first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = int((time.perf_counter() - self.started) * 1000)

    def fail(self, status: int, error_type: str) -> None:
        self.status, self.error_type = status, error_type

    def record(self) -> None:
        """Queue the call's usage record without waiting (error and disconnect paths)."""
        event = self._event()
        if event is not None:
            limits.settle_soon(self.reservation, tokens=event.total_tokens, cost_usd=event.cost_usd)
            recorder.record(event)

    async def record_durable(self) -> None:
        """Hand the record over before the response completes (durable in Redis when configured)."""
        event = self._event()
        if event is not None:
            # With Redis: one round trip settles the limits and appends the record to the usage stream.
            await recorder.record_durable(event, settle=self.reservation)

    async def record_sent(self):
        """`record_durable` whose last half may run after the response: returns the wait for Redis's
        acknowledgement (None when nothing is left to wait for). The record is safe from this process's death
        when this returns (usage/recorder.py)."""
        event = self._event()
        if event is None:
            return None
        return await recorder.record_sent(event, settle=self.reservation)

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
