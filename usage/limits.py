"""Rate limits and budgets per key and per team, enforced across every gateway process.

What is limited (fields of `ApiKey` and `Team`, see usage/models.py `LimitFields`):
  - requests per minute and tokens per minute: GCRA (a token bucket as one timestamp per counter). A full
    minute's allowance may be used at once, then it refills continuously; there are no fixed windows, so
    no double burst at a minute boundary.
  - parallel requests: one slot per running call, released when the call ends, expiring after
    `LIMITS_SLOT_TTL_SECONDS` if a process dies holding it.
  - token and USD budgets per calendar day, week (from Monday) or month in UTC, counted per period
    (`…:tok:m202506`), with an optional soft threshold that only warns.

One call, one reservation. Before the upstream call, `reserve()` checks and takes, in one atomic step,
every limit of the key and of its team: one request, the TPM estimate, a parallel slot, and on the
budgets the prompt's upper bound plus the output tokens the call may produce (the effective max
tokens after registry defaults and caps, times `n`). A call that can be cut (an upstream stream) may
start with less output than it asked for: it is then stopped, cleanly, when its relayed events reach
what it holds and `extend()` finds nothing left. When the call ends, `settle()` replaces the
reservation with the real usage (refunding the rest; everything when the call failed) and frees the slot.

Where the counters live:
  - `REDIS_URL` set: Redis, one EVALSHA per reserve and one per settle (usage/limit_scripts.py), time from
    Redis; the settle travels in one pipeline with the call's usage record (`settle(..., append=)`). Budget
    counters missing from Redis (first call of a period, or Redis lost its data) are seeded from the hourly
    usage rollups, so a Redis restart does not hand out a fresh budget.
  - no Redis: the database, in one short transaction per reserve and per settle (rows locked with
    SELECT … FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers). This holds with any
    number of worker processes, so start-up never has to refuse, and nothing is ever counted per
    process. It costs a transaction per call, and only for keys that have limits.

Redis unreachable (or the database, without Redis): rates fail open (`LIMITS_FAIL_OPEN_RATES`, default
true), budgets fail closed (`LIMITS_FAIL_OPEN_BUDGETS`, default false: 503); either way an ERROR is logged.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import logging
import math
import os
import re
import secrets
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from django.conf import settings

from .limit_scripts import RESERVE, SETTLE
from .redis_mux import MuxRedis, ReplyError, Script

log = logging.getLogger("gateway.limits")

PERIOD_MS = 60_000  # requests and tokens are limited per minute
MEDIA_TOKENS = 2048  # budgeted per image / document / audio part sent inline (base64)
BUDGET_GRACE = timedelta(days=2)  # budget counters outlive their period: late settlements still land
NANO = Decimal(1_000_000_000)  # USD amounts are counted in nano-dollars (integers)
_BUDGETS = ("tokens", "usd")
_RATES = ("rpm", "tpm", "parallel")


# --- what a key or team is limited to ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None
    token_budget: int | None = None
    token_period: str = "month"
    usd_budget: Decimal | None = None
    usd_period: str = "month"
    warn_percent: int | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.parallel, self.token_budget, self.usd_budget))

    @classmethod
    def of(cls, obj) -> Limits:
        """The limits of an ApiKey or Team row."""
        limits = cls(
            rpm=obj.rpm_limit, tpm=obj.tpm_limit, parallel=obj.parallel_limit, token_budget=obj.token_budget,
            token_period=obj.token_budget_period or "month", usd_budget=obj.usd_budget,
            usd_period=obj.usd_budget_period or "month", warn_percent=obj.budget_warn_percent,
        )
        return limits if limits.any else NO_LIMITS

    def describe(self) -> dict:
        return {"requests_per_minute": self.rpm, "tokens_per_minute": self.tpm, "parallel_requests": self.parallel}


NO_LIMITS = Limits()


class LimitExceeded(Exception):
    """A call refused by a limit: render it as a 429 with these fields (api/context.py does)."""

    def __init__(self, message: str, *, type: str, code: str, headers: dict[str, str], status: int = 429) -> None:
        super().__init__(message)
        self.message, self.type, self.code, self.headers, self.status = message, type, code, headers, status


# --- periods ---------------------------------------------------------------------------------------------


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime, str]:
    """(start, end, tag) of the calendar period (UTC) holding `now`."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1), "d" + day.strftime("%Y%m%d")
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7), "w" + start.strftime("%Y%m%d")
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end, "m" + start.strftime("%Y%m")


# --- the checks of one call ------------------------------------------------------------------------------


@dataclass(slots=True)
class Check:
    kind: str  # rpm | tpm | parallel | tokens | usd
    scope: str  # key | team
    scope_id: int
    scope_name: str
    limit: int  # requests, tokens, slots, tokens, nano-USD
    counter: str  # "k12:rpm", "t3:tok:m202506"
    period: str = ""
    start: datetime | None = None
    resets_at: datetime | None = None
    warn_at: int | None = None

    @property
    def op(self) -> str:
        return {"rpm": "g", "tpm": "g", "parallel": "p"}.get(self.kind, "b")

    @property
    def owner(self) -> str:
        return f"API key '{self.scope_name}'" if self.scope == "key" else f"team '{self.scope_name}'"


def _scope_checks(limits: Limits, scope: str, scope_id: int, name: str, now: datetime) -> tuple[list, list]:
    tag = ("k" if scope == "key" else "t") + str(scope_id)
    budgets, rates = [], []
    for kind, amount, period in (("tokens", limits.token_budget, limits.token_period),
                                 ("usd", limits.usd_budget, limits.usd_period)):
        if amount is None:
            continue
        limit = int(amount) if kind == "tokens" else int(Decimal(amount) * NANO)
        start, end, ptag = period_bounds(period, now)
        warn = math.ceil(limit * limits.warn_percent / 100) if limits.warn_percent else None
        budgets.append(Check(kind, scope, scope_id, name, limit, f"{tag}:{kind[:3]}:{ptag}", period, start, end,
                             warn))
    for kind, value in (("rpm", limits.rpm), ("tpm", limits.tpm), ("parallel", limits.parallel)):
        if value is not None:
            rates.append(Check(kind, scope, scope_id, name, int(value), f"{tag}:{kind}"))
    return budgets, rates


def checks_for(principal, now: datetime | None = None) -> list[Check]:
    """Every limit a call of `principal` is subject to: budgets first (they are reported before rates)."""
    now = now or datetime.now(UTC)
    kb, kr = _scope_checks(principal.limits, "key", principal.id, principal.name, now)
    tb, tr = ([], [])
    if principal.team_id is not None:
        tb, tr = _scope_checks(principal.team_limits, "team", principal.team_id, principal.team_name, now)
    return [*kb, *tb, *kr, *tr]


@dataclass(slots=True)
class Demand:
    rate_tokens: int  # what the call counts against tokens per minute
    prompt_tokens: int  # upper bound of the prompt, for budgets
    max_output: int  # output tokens wanted (all choices)
    min_output: int  # least output worth starting; == max_output when the call cannot be cut
    nano_in: int = 0  # nano-USD per prompt token (upper bound)
    nano_out: int = 0  # nano-USD per output token (upper bound)


def _args(check: Check, demand: Demand) -> tuple:
    """The five script arguments of one check: op, limit, a, b, c (see usage/limit_scripts.py)."""
    if check.kind == "rpm":
        return "g", check.limit, PERIOD_MS, 1, 0
    if check.kind == "tpm":
        return "g", check.limit, PERIOD_MS, max(demand.rate_tokens, 1), 0
    if check.kind == "parallel":
        return "p", check.limit, _slot_ttl_ms(), 0, 0
    ttl = int((check.resets_at - datetime.now(UTC) + BUDGET_GRACE).total_seconds())
    if check.kind == "tokens":
        return "b", check.limit, demand.prompt_tokens, 1, ttl
    return "b", check.limit, demand.prompt_tokens * demand.nano_in, demand.nano_out, ttl


def _slot_ttl_ms() -> int:
    return int(settings.LIMITS_SLOT_TTL_SECONDS * 1000)


# --- the algorithm (the Python twin of the RESERVE script) ---------------------------------------------


@dataclass(slots=True)
class Outcome:
    status: int  # 1 taken, 0 refused, -2 budget counter missing
    failed: int  # 1-based index of the first refusing (or missing) check, 0 if none
    retry_ms: int  # for a refused rate: ms until it would pass; -1: never (larger than the limit)
    out: int  # output tokens granted on the budgets
    info: list[tuple[int, int]]  # per check: (value, ms until fully available)
    new: dict[int, float] = field(default_factory=dict)  # Python backend: values to write

    @classmethod
    def from_reply(cls, reply: list) -> Outcome:
        values = [int(v) for v in reply]
        pairs = values[4:]
        return cls(values[0], values[1], values[2], values[3], list(zip(pairs[0::2], pairs[1::2], strict=True)))


EPS = 0.001


def gcra(now: float, tat: float | None, limit: int, period: float, cost: float) -> tuple[bool, float, int, int, int]:
    """One GCRA step: (allowed, new TAT, remaining after, ms until full after, retry ms).

    The emission interval is period / limit; a call of `cost` moves the theoretical arrival time on by
    cost × interval and is allowed while that stays within one period of now. `remaining` and `reset` are
    those after taking when allowed, as they stand when not; `retry` is -1 when the cost alone exceeds the
    limit (it never passes).
    """
    interval = period / limit
    tat = now if tat is None or tat < now else tat
    new = tat + cost * interval
    if new - now <= period + EPS:
        return True, new, math.floor((period - (new - now)) / interval + EPS), math.ceil(new - now), 0
    retry = -1 if cost * interval > period + EPS else math.ceil(new - now - period)
    return False, tat, math.floor((period - (tat - now)) / interval + EPS), math.ceil(tat - now), retry


def decide(now: float, args: list[tuple], current: dict[int, float | None], used: dict[int, int],
           max_out: int, min_out: int) -> Outcome:
    """The RESERVE script's decision, for the database backend and the unit tests (indexes 0-based)."""
    out = max_out
    for i, (op, limit, a, b, _c) in enumerate(args):
        if op == "b" and b > 0:
            out = min(out, math.floor((limit - current[i] - a) / b))
    need = max(out, min_out)
    failed, retry = 0, 0
    took, kept, new = [], [], {}
    for i, (op, limit, a, b, _c) in enumerate(args):
        refused = None
        if op == "b":
            v0, w0, v, w = current[i], 0, current[i] + a + out * b, 0
            if not (current[i] < limit and current[i] + a + need * b <= limit):
                refused = 0
        elif op == "g":
            _ok, _tat, v0, w0, _r = gcra(now, current[i], limit, a, 0)
            ok, new[i], v, w, r = gcra(now, current[i], limit, a, b)
            if not ok:
                refused = r
        else:
            v0, w0 = used[i], 0
            v, w = v0 + 1, 0
            if v0 >= limit:
                refused = 1000
        if refused is not None and not failed:
            failed, retry = i + 1, refused
        took.append((int(v), int(w)))
        kept.append((int(v0), int(w0)))
    if failed:
        return Outcome(0, failed, retry, max(out, 0), kept)
    return Outcome(1, 0, 0, out, took, new)


# --- reservations ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Reservation:
    checks: list[Check]
    token: str
    demand: Demand
    out: int  # output tokens held on the budgets
    headers: dict[str, str]
    allowance: int | None  # output a cuttable call may relay before it must extend; None: no budget applies
    settled: bool = False

    def budget_amount(self, check: Check) -> int:
        d = self.demand
        if check.kind == "tokens":
            return d.prompt_tokens + self.out
        return d.prompt_tokens * d.nano_in + self.out * d.nano_out


def default_max_output() -> int:
    return int(settings.LIMITS_DEFAULT_MAX_OUTPUT_TOKENS)


_MEDIA = re.compile(rb"data:[\w/+.-]*;base64,[A-Za-z0-9+/=]+")


def prompt_bounds(body: bytes) -> tuple[int, int]:
    """(upper bound, typical estimate) of the prompt tokens of a request body.

    Byte-level tokenizers never produce more tokens than bytes of text, and the JSON body holds every
    byte of the prompt (plus syntax, which covers chat-template tokens): its length, without inline
    media, is the upper bound budgets need. Rates use the usual ~4 bytes per token instead, so a long
    prompt is not refused a tokens-per-minute limit it would fit. Inline media count MEDIA_TOKENS each.
    """
    media = [m.end() - m.start() for m in _MEDIA.finditer(body)]
    text = len(body) - sum(media)
    extra = len(media) * MEDIA_TOKENS
    return text + extra, math.ceil(text / 4) + extra


def _nano_per_token(price_per_m) -> int:
    return int((Decimal(price_per_m or 0) * 1000).to_integral_value(ROUND_CEILING))


def demand_for(*, body: bytes, max_output: int | None, choices: int = 1, cuttable: bool = False,
               price_in_per_m=0, price_out_per_m=0) -> Demand:
    upper, typical = prompt_bounds(body)
    out = (default_max_output() if max_output is None else max_output) * max(choices, 1)
    return Demand(rate_tokens=typical + out, prompt_tokens=upper, max_output=out,
                  min_output=min(1, out) if cuttable else out,
                  nano_in=_nano_per_token(price_in_per_m), nano_out=_nano_per_token(price_out_per_m))


_tokens: tuple[int, str, itertools.count] = (0, "", itertools.count())


def _new_token() -> str:
    """A reservation token unique across processes: a random per-process prefix and a counter (no syscall)."""
    global _tokens
    pid, prefix, counter = _tokens
    if pid != os.getpid():  # first call, or a forked child: a prefix of its own
        pid, prefix, counter = _tokens = (os.getpid(), secrets.token_hex(6), itertools.count())
    return f"{prefix}{next(counter):x}"


_refused: dict[int, float] = {}  # key id -> when this process last refused it (one entry per key at most)


def refused_recently(principal, within: float = 1.0) -> bool:
    """Did this process refuse the key in the last `within` seconds? Callers then reserve before doing a
    call's costly work (signing) rather than beside it."""
    at = _refused.get(principal.id)
    return at is not None and time.monotonic() - at < within


def link_idle() -> bool:
    """Would a limiter round trip now be dead time for this process? True without Redis (the database
    backend works in a thread) and when this loop's Redis link has no command queued or unanswered; under
    load it has, and a reservation is better left to leave with the others of its loop iteration."""
    client = _REDIS.opened_client() if settings.REDIS_URL else None
    return client is None or client.idle


def send_queued() -> None:
    """Send the limit commands queued so far in this loop iteration now (a reservation begun in a task
    leaves before the caller goes on to CPU work, instead of after it)."""
    client = _REDIS.opened_client() if settings.REDIS_URL else None
    if client is not None:
        client.flush()


async def reserve(principal, demand: Demand) -> Reservation | None:
    """Take this call's share of every limit of its key and team at once, or raise LimitExceeded.

    Returns None when nothing limits the principal (or when the store is down and the policy fails open).
    """
    checks = checks_for(principal)
    if not checks:
        return None
    token = _new_token()
    args = [_args(c, demand) for c in checks]
    try:
        outcome = await _backend().reserve(checks, args, demand.max_output, demand.min_output, token)
    except Exception as exc:
        _fail_policy(checks, exc)
        return None
    cuttable = demand.min_output < demand.max_output
    has_budget = any(c.kind in _BUDGETS for c in checks)
    if outcome.status != 1:
        _refused[principal.id] = time.monotonic()
        raise _refusal(checks, outcome, demand)
    headers = _headers(checks, outcome.info)
    _warn(checks, outcome.info)
    return Reservation(checks, token, demand, outcome.out, headers,
                       allowance=outcome.out if (has_budget and cuttable) else None)


async def extend(reservation: Reservation, want: int) -> int:
    """Take up to `want` more output tokens on the budgets of a running call; return how many it got."""
    checks = [c for c in reservation.checks if c.kind in _BUDGETS]
    if not checks or want <= 0:
        return 0
    d = reservation.demand
    extra = Demand(rate_tokens=0, prompt_tokens=0, max_output=want, min_output=1, nano_in=0, nano_out=d.nano_out)
    try:
        outcome = await _backend().reserve(checks, [_args(c, extra) for c in checks], want, 1, "")
    except Exception as exc:
        try:
            _fail_policy(checks, exc)
        except LimitExceeded:
            return 0
        if reservation.allowance is not None:  # failing open: let it run, but hold nothing more
            reservation.allowance += want
        return want
    if outcome.status != 1:
        return 0
    reservation.out += outcome.out
    if reservation.allowance is not None:
        reservation.allowance += outcome.out
    return outcome.out


async def settle(reservation: Reservation | None, *, tokens: int, cost_usd,
                 append: tuple[str, dict] | None = None) -> None:
    """Replace the reservation with the call's real usage (zero for a failed call) and free its slot.

    `append` (Redis only): `(stream, fields)` of an XADD sent in the same round trip as the settle, so a
    call's usage record costs no round trip of its own (usage/recorder.py). An append that did not land
    raises; a settle that did not land is only logged, as without `append`.
    """
    ops = _settle_ops(reservation, tokens=tokens, cost_usd=cost_usd)
    if append is not None:
        await _REDIS.settle_and_append(ops, append)
        return
    if not ops:
        return
    try:
        await _backend().settle(ops)
    except Exception as exc:  # the slot expires on its own; an unsettled budget over-counts, never under
        _settle_failed(exc)


def start_settle_and_append(reservation: Reservation | None, *, tokens: int, cost_usd, append: tuple[str, dict]):
    """`settle(..., append=...)` begun without waiting: its commands are queued on this loop's open Redis link
    when this returns, and leave with the loop iteration's others, or at `send_queued()`. Returns the wait for
    their replies (a coroutine function that raises when the append did not land), or None when no link is
    open and answering (call `settle()` then)."""
    client = _REDIS.opened_client()
    if client is None or not client.ready:
        return None
    return _REDIS.start_settle_and_append(client, _settle_ops(reservation, tokens=tokens, cost_usd=cost_usd), append)


def all_sent() -> bool:
    """Every limit command queued on this loop's Redis link has been handed to the kernel."""
    client = _REDIS.opened_client() if settings.REDIS_URL else None
    return client is None or client.all_sent


def _settle_failed(exc: BaseException) -> None:
    _loud("settle", "limits: could not settle a reservation (%s: %s); its parallel slot expires after %ss",
          type(exc).__name__, exc, settings.LIMITS_SLOT_TTL_SECONDS)


def _settle_ops(reservation: Reservation | None, *, tokens: int, cost_usd) -> list:
    """The settle script's operations for a reservation (none when there is nothing to settle)."""
    if reservation is None or reservation.settled:
        return []
    reservation.settled = True
    d = reservation.demand
    real_nano = int((Decimal(cost_usd or 0) * NANO).to_integral_value(ROUND_HALF_UP))
    ops = []
    for c in reservation.checks:
        if c.kind == "rpm":
            continue
        if c.kind == "tpm":
            ops.append((c, ("g", c.limit, PERIOD_MS, tokens - max(d.rate_tokens, 1))))
        elif c.kind == "parallel":
            ops.append((c, ("p", reservation.token, 0, 0)))
        elif c.kind == "tokens":
            ops.append((c, ("b", tokens - reservation.budget_amount(c), 0, 0)))
        else:
            ops.append((c, ("b", real_nano - reservation.budget_amount(c), 0, 0)))
    return ops


_pending: set[asyncio.Task] = set()


def settle_soon(reservation: Reservation | None, *, tokens: int, cost_usd) -> None:
    """`settle()` from synchronous code (disconnect and error paths): runs as a task of the current loop."""
    if reservation is None or reservation.settled:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(settle(reservation, tokens=tokens, cost_usd=cost_usd))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


# --- refusals, headers, warnings --------------------------------------------------------------------------


def format_duration(ms: float) -> str:
    """A reset time the way OpenAI writes it (Go durations): `0s`, `120ms`, `6s`, `8.64s`, `1m0s`, `1h2m3s`."""
    ms = max(0, math.ceil(ms))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def _headers(checks: list[Check], info: list[tuple[int, int]]) -> dict[str, str]:
    """x-ratelimit-* (OpenAI's names, the tightest of key and team) and the gateway's budget headers."""
    headers: dict[str, str] = {}
    for kind, suffix in (("rpm", "requests"), ("tpm", "tokens")):
        states = [(v, w, c) for c, (v, w) in zip(checks, info, strict=True) if c.kind == kind]
        if states:
            v, w, c = min(states, key=lambda s: (s[0], -s[1]))
            headers[f"x-ratelimit-limit-{suffix}"] = str(c.limit)
            headers[f"x-ratelimit-remaining-{suffix}"] = str(max(v, 0))
            headers[f"x-ratelimit-reset-{suffix}"] = format_duration(w)
    for kind, name in (("tokens", "tokens"), ("usd", "usd")):
        states = [(c.limit - v, c) for c, (v, _w) in zip(checks, info, strict=True) if c.kind == kind]
        if states:
            left, c = min(states, key=lambda s: s[0])
            left = max(left, 0)
            headers[f"x-gateway-budget-remaining-{name}"] = str(left) if kind == "tokens" else _usd(left)
            headers[f"x-gateway-budget-reset-{name}"] = c.resets_at.isoformat()
    warnings = [f"{c.owner}: {100 * v // max(c.limit, 1)}% of the {_ADJECTIVE[c.period]} {_unit(c)} budget used"
                for c, (v, _w) in zip(checks, info, strict=True) if c.warn_at is not None and v >= c.warn_at]
    if warnings:
        headers["x-gateway-budget-warning"] = "; ".join(warnings)
    return headers


_ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly"}


def _usd(nano: int) -> str:
    return f"{Decimal(nano) / NANO:.6f}"


def _unit(check: Check) -> str:
    return "token" if check.kind == "tokens" else "USD"


_warned: set[tuple[str, str]] = set()


def _warn(checks: list[Check], info: list[tuple[int, int]]) -> None:
    for c, (v, _w) in zip(checks, info, strict=True):
        if c.warn_at is not None and v >= c.warn_at and (c.counter, c.period) not in _warned:
            _warned.add((c.counter, c.period))  # once per counter and process
            log.warning("limits: %s has used %d%% of its %s %s budget (soft threshold %d%%)", c.owner,
                        100 * v // max(c.limit, 1), _ADJECTIVE[c.period], _unit(c), 100 * c.warn_at // max(c.limit, 1))


def _refusal(checks: list[Check], outcome: Outcome, demand: Demand) -> LimitExceeded:
    headers = _headers(checks, outcome.info)
    if outcome.status == -2:  # cannot happen after seeding; refuse rather than pass unchecked
        return LimitExceeded("Limits are being initialised; try again.", type="api_error", code="limits_unavailable",
                             headers={"retry-after": "1", **headers}, status=503)
    c = checks[outcome.failed - 1]
    value = outcome.info[outcome.failed - 1][0]
    if c.kind in _BUDGETS:
        seconds = max(1, math.ceil((c.resets_at - datetime.now(UTC)).total_seconds()))
        headers["retry-after"] = str(seconds)
        if c.kind == "tokens":
            need = demand.prompt_tokens + demand.min_output
            what = f"{c.limit} tokens, {value} used or reserved; this call needs up to {need}"
        else:
            need = demand.prompt_tokens * demand.nano_in + demand.min_output * demand.nano_out
            what = f"${_usd(c.limit)}, ${_usd(value)} used or reserved; this call needs up to ${_usd(need)}"
        message = (f"You exceeded the {_ADJECTIVE[c.period]} {_unit(c)} budget of {c.owner} ({what}). "
                   f"It resets at {c.resets_at.isoformat()}.")
        return LimitExceeded(message, type="insufficient_quota", code="insufficient_quota", headers=headers)
    if c.kind == "parallel":
        headers["retry-after"], headers["retry-after-ms"] = "1", "1000"
        message = f"Too many parallel requests on {c.owner}: limit {c.limit}. Try again when one of them finishes."
        return LimitExceeded(message, type="requests", code="rate_limit_exceeded", headers=headers)
    kind = "requests" if c.kind == "rpm" else "tokens"
    if outcome.retry_ms < 0:
        message = (f"Request too large for the tokens per minute (TPM) limit of {c.owner}: limit {c.limit}, "
                   f"requested {demand.rate_tokens} (prompt estimate plus max output tokens). Lower max_tokens "
                   "or shorten the prompt.")
        return LimitExceeded(message, type="tokens", code="rate_limit_exceeded", headers=headers)
    headers["retry-after"] = str(max(1, math.ceil(outcome.retry_ms / 1000)))
    headers["retry-after-ms"] = str(max(outcome.retry_ms, 1))
    label = "requests per minute (RPM)" if c.kind == "rpm" else "tokens per minute (TPM)"
    requested = "" if c.kind == "rpm" else f", requested {demand.rate_tokens}"
    message = (f"Rate limit reached for {label} on {c.owner}: limit {c.limit}{requested}. "
               f"Please try again in {format_duration(outcome.retry_ms)}.")
    return LimitExceeded(message, type=kind, code="rate_limit_exceeded", headers=headers)


_loud_last: dict[str, tuple[float, int]] = {}


def _loud(key: str, message: str, *args) -> None:
    """ERROR, at most once per 10 s per situation (with the number of occurrences left out meanwhile)."""
    now = time.monotonic()
    last, suppressed = _loud_last.get(key, (0.0, 0))
    if now - last < 10:
        _loud_last[key] = (last, suppressed + 1)
        return
    _loud_last[key] = (now, 0)
    log.error(message + (f" [{suppressed} more since the last report]" if suppressed else ""), *args)


def _fail_policy(checks: list[Check], exc: Exception) -> None:
    """The limit store is unreachable: refuse (503) or let the call through, per limit kind."""
    store = "Redis" if settings.REDIS_URL else "the database"
    reason = f"{type(exc).__name__}: {exc}"
    kinds = {c.kind for c in checks}
    closed = [k for k in kinds if (k in _BUDGETS and not settings.LIMITS_FAIL_OPEN_BUDGETS)
              or (k in _RATES and not settings.LIMITS_FAIL_OPEN_RATES)]
    if closed:
        _loud("closed", "limits: %s is unreachable (%s); FAILING CLOSED for %s: calls are refused with 503",
              store, reason, ", ".join(sorted(closed)))
        raise LimitExceeded(
            "The gateway cannot check this key's limits right now; try again shortly.", type="api_error",
            code="limits_unavailable", headers={"retry-after": "5"}, status=503,
        ) from exc
    _loud("open", "limits: %s is unreachable (%s); FAILING OPEN for %s: calls pass unlimited", store, reason,
          ", ".join(sorted(kinds)))


# --- backends ----------------------------------------------------------------------------------------------


def _backend():
    return _REDIS if settings.REDIS_URL else _DATABASE


class RedisBackend:
    """Counters in Redis; one EVALSHA to reserve and one to settle. One pipelined connection per event loop."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url  # None: settings.REDIS_URL
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._prefix: str | None = None

    def prefix(self) -> str:
        """`{gwl:<tag>}:`, one hash tag, so a Redis Cluster keeps a call's counters in one slot.

        The tag is LIMITS_REDIS_PREFIX, else derived from the database name: every replica of one
        installation agrees on it (host names may be spelled differently), while installations or test
        runs sharing one Redis but not one database never share counters.
        """
        if self._prefix is None:
            tag = settings.LIMITS_REDIS_PREFIX
            if not tag:
                tag = hashlib.sha1(str(settings.DATABASES["default"]["NAME"]).encode()).hexdigest()[:10]
            self._prefix = "{gwl:" + tag + "}:"
        return self._prefix

    def _client(self):
        """(url, client) of this event loop: one pipelined connection (usage/redis_mux.py)."""
        loop = asyncio.get_running_loop()
        url = self.url or settings.REDIS_URL
        entry = self._clients.get(loop)
        if entry is None or entry[0] != url:
            timeout = settings.LIMITS_REDIS_TIMEOUT
            entry = (url, MuxRedis(url, connect_timeout=timeout, stale_after=max(4 * timeout, 2.0)))
            self._clients[loop] = entry
        return entry

    def opened_client(self) -> MuxRedis | None:
        """This event loop's client if one was opened (None: no command went through it yet)."""
        entry = self._clients.get(asyncio.get_running_loop())
        return entry[1] if entry is not None else None

    async def reserve(self, checks, args, max_out, min_out, member) -> Outcome:
        _url, client = self._client()
        keys = [self.prefix() + c.counter for c in checks]
        flat = [len(checks), max_out, min_out, member]
        for a in args:
            flat.extend(a)
        for _attempt in range(len(checks) + 1):
            async with asyncio.timeout(settings.LIMITS_REDIS_TIMEOUT * 2):
                outcome = Outcome.from_reply(await client.evalsha(_RESERVE, keys, flat))
            if outcome.status != -2:
                return outcome
            # A budget counter this period has not seen yet: start it from the recorded usage.
            check = checks[outcome.failed - 1]
            from gateway_project.db import run_db

            seed = await run_db(seed_value, check)
            ttl = args[outcome.failed - 1][4]
            async with asyncio.timeout(settings.LIMITS_REDIS_TIMEOUT * 2):
                await client.command("SET", keys[outcome.failed - 1], seed, "NX", "EX", max(ttl, 1))
        return outcome

    def _settle_args(self, ops) -> tuple[list, list]:
        keys = [self.prefix() + c.counter for c, _ in ops]
        flat: list = [len(ops)]
        for _c, a in ops:
            flat.extend(a)
        return keys, flat

    async def settle(self, ops) -> None:
        _url, client = self._client()
        keys, flat = self._settle_args(ops)
        async with asyncio.timeout(settings.LIMITS_REDIS_TIMEOUT * 2):
            await client.evalsha(_SETTLE, keys, flat)

    async def settle_and_append(self, ops, append: tuple[str, dict]) -> None:
        """EVALSHA settle (when there are `ops`) and XADD `append`, written together: one round trip."""
        _url, client = self._client()
        commands, keys, flat = self._settle_and_append_commands(ops, append)
        await self._settled_and_appended(client, client.execute(*commands), ops, keys, flat)

    def start_settle_and_append(self, client: MuxRedis, ops, append: tuple[str, dict]):
        """`settle_and_append` on the `ready` client, its commands queued before this returns; returns the
        wait for their replies (a coroutine function), which raises when the append did not land."""
        commands, keys, flat = self._settle_and_append_commands(ops, append)
        replies = client.replies(client.queue(*commands))
        return functools.partial(self._settled_and_appended, client, replies, ops, keys, flat)

    def _settle_and_append_commands(self, ops, append: tuple[str, dict]) -> tuple[list, list, list]:
        stream, fields = append
        xadd = ("XADD", stream, "*", *(v for kv in fields.items() for v in kv))
        if not ops:
            return [xadd], [], []
        keys, flat = self._settle_args(ops)
        return [("EVALSHA", _SETTLE.sha, len(keys), *keys, *flat), xadd], keys, flat

    async def _settled_and_appended(self, client: MuxRedis, replies, ops, keys, flat) -> None:
        """Wait for the replies (`replies`: the awaitable of the commands' replies) and deal with them."""
        try:
            async with asyncio.timeout(settings.LIMITS_REDIS_TIMEOUT * 2):
                answers = await replies
        except BaseException as exc:  # nothing is known to have landed: the caller keeps the record another way
            if ops and not isinstance(exc, asyncio.CancelledError):
                _settle_failed(exc)
            raise
        settled, added = answers if ops else (None, answers[0])
        if ops and isinstance(settled, ReplyError):
            try:
                async with asyncio.timeout(settings.LIMITS_REDIS_TIMEOUT * 2):
                    await client.evalsha(_SETTLE, keys, flat)  # loads the script if Redis lost it (a restart)
            except Exception as exc:
                _settle_failed(exc)
        if isinstance(added, ReplyError):
            raise added

    async def read(self, checks) -> list[int | None]:
        _url, client = self._client()
        async with asyncio.timeout(settings.LIMITS_REDIS_TIMEOUT * 2):
            values = await client.command("MGET", *[self.prefix() + c.counter for c in checks])
        return [int(v) if v is not None else None for v in values]


def seed_value(check: Check) -> int:
    """What a budget counter starts from: the usage already recorded in its period (hourly rollups)."""
    from django.db.models import Sum

    from .models import UsageRollup

    qs = UsageRollup.objects.filter(bucket__gte=check.start)
    qs = qs.filter(key_id=check.scope_id) if check.scope == "key" else qs.filter(team_id=check.scope_id)
    if check.kind == "tokens":
        return int(qs.aggregate(v=Sum("total_tokens"))["v"] or 0)
    return int((Decimal(qs.aggregate(v=Sum("cost_usd"))["v"] or 0) * NANO).to_integral_value(ROUND_HALF_UP))


class DatabaseBackend:
    """Counters in the database (no Redis): one short transaction per reserve and per settle.

    Rows are locked in name order (SELECT … FOR UPDATE on PostgreSQL), so two calls of one team never
    deadlock; SQLite runs every write transaction as BEGIN IMMEDIATE (gateway_project/settings.py), which
    serialises them. GCRA times are stored in microseconds; time is this host's clock.
    """

    async def reserve(self, checks, args, max_out, min_out, member) -> Outcome:
        from gateway_project.db import run_db

        return await run_db(self._retrying, self._reserve, checks, args, max_out, min_out, member)

    async def settle(self, ops) -> None:
        from gateway_project.db import run_db

        await run_db(self._retrying, self._settle, ops)

    async def read(self, checks) -> list[int | None]:
        from gateway_project.db import run_db

        def _read():
            from .models import LimitCounter

            rows = dict(LimitCounter.objects.filter(name__in=[c.counter for c in checks]).values_list("name",
                                                                                                         "value"))
            return [rows.get(c.counter) for c in checks]

        return await run_db(_read)

    @staticmethod
    def _retrying(fn, *args):
        from django.db import OperationalError

        for attempt in range(3):
            try:
                return fn(*args)
            except OperationalError:  # a deadlock or a lock timeout: try again, then give up
                if attempt == 2:
                    raise
                time.sleep(0.01 * (attempt + 1))
        return None

    @staticmethod
    def _lock(checks, now: datetime, create: bool) -> dict:
        from .models import LimitCounter

        names = sorted({c.counter for c in checks})
        rows = {r.name: r for r in LimitCounter.objects.select_for_update().filter(name__in=names).order_by("name")}
        missing = [n for n in names if n not in rows]
        if missing and create:
            by_name = {c.counter: c for c in checks}
            LimitCounter.objects.bulk_create(
                [LimitCounter(name=n, value=seed_value(by_name[n]) if by_name[n].kind in _BUDGETS else 0,
                              expires_at=now) for n in missing],
                ignore_conflicts=True,
            )
            rows.update({r.name: r for r in LimitCounter.objects.select_for_update().filter(name__in=missing)})
        return rows

    def _reserve(self, checks, args, max_out, min_out, member) -> Outcome:
        import random

        from django.db import transaction

        from .models import LimitCounter, LimitSlot

        now = datetime.now(UTC)
        now_ms = now.timestamp() * 1000
        with transaction.atomic():
            rows = self._lock(checks, now, create=True)
            current: dict[int, float | None] = {}
            used: dict[int, int] = {}
            for i, c in enumerate(checks):
                row = rows[c.counter]
                if c.op == "b":
                    current[i] = row.value
                elif c.op == "g":
                    current[i] = row.value / 1000 if row.value else None
                else:
                    LimitSlot.objects.filter(scope=c.counter, expires_at__lte=now).delete()
                    used[i] = LimitSlot.objects.filter(scope=c.counter).count()
            outcome = decide(now_ms, args, current, used, max_out, min_out)
            if outcome.status != 1:
                return outcome
            for i, c in enumerate(checks):
                row, (op, _limit, a, b, ttl) = rows[c.counter], args[i]
                if op == "g":
                    row.value = math.ceil(outcome.new[i] * 1000)
                    row.expires_at = datetime.fromtimestamp(outcome.new[i] / 1000, UTC) + timedelta(seconds=1)
                elif op == "b":
                    row.value += a + outcome.out * b
                    row.expires_at = now + timedelta(seconds=ttl)
                else:
                    LimitSlot.objects.create(scope=c.counter, token=member,
                                             expires_at=now + timedelta(milliseconds=a))
                    row.expires_at = now + timedelta(milliseconds=a)
            LimitCounter.objects.bulk_update(list(rows.values()), ["value", "expires_at"])
            if random.random() < 0.01:  # sweep what expired now and then
                LimitCounter.objects.filter(expires_at__lt=now - timedelta(minutes=5)).delete()
                LimitSlot.objects.filter(expires_at__lt=now).delete()
        return outcome

    def _settle(self, ops) -> None:
        from django.db import transaction

        from .models import LimitSlot

        now = datetime.now(UTC)
        with transaction.atomic():
            rows = self._lock([c for c, _ in ops], now, create=False)
            changed = []
            for c, (op, a, b, correction) in ops:
                row = rows.get(c.counter)
                if op == "p":
                    LimitSlot.objects.filter(token=a).delete()
                elif row is None:
                    continue
                elif op == "g" and correction and row.value:
                    row.value = max(0, math.ceil(row.value + correction * (b / a) * 1000))
                    changed.append(row)
                elif op == "b" and a:
                    row.value = max(0, row.value + a)
                    changed.append(row)
            if changed:
                type(changed[0]).objects.bulk_update(changed, ["value"])


_REDIS = RedisBackend()
_DATABASE = DatabaseBackend()
_RESERVE, _SETTLE = Script(RESERVE), Script(SETTLE)


# --- GET /v1/usage ---------------------------------------------------------------------------------------


async def snapshot(principal) -> dict:
    """`limits` and `budget` of GET /v1/usage: what the key and its team are limited to, and budgets' state."""
    limits = {"key": principal.limits.describe()}
    if principal.team_id is not None:
        limits["team"] = principal.team_limits.describe()
    budgets = [c for c in checks_for(principal) if c.kind in _BUDGETS]
    if not budgets:
        return {"limits": limits, "budget": None}
    try:
        values = await _backend().read(budgets)
    except Exception as exc:
        log.warning("limits: could not read budget counters: %s", exc)
        values = [None] * len(budgets)
    from gateway_project.db import run_db

    budget: dict = {}
    for c, value in zip(budgets, values, strict=True):
        if value is None:
            value = await run_db(seed_value, c)
        limit, used = (c.limit, value) if c.kind == "tokens" else (float(_usd(c.limit)), float(_usd(value)))
        budget.setdefault(c.scope, {})[c.kind] = {
            "limit": limit, "used": used, "remaining": max(limit - used, 0), "period": c.period,
            "period_start": c.start.isoformat(), "resets_at": c.resets_at.isoformat(),
            "warn_at_percent": (principal.limits if c.scope == "key" else principal.team_limits).warn_percent,
        }
    return {"limits": limits, "budget": budget}
