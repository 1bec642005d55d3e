"""POST /v1/chat/completions: route, translate, call OCI, translate back (streamed or not)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp
import orjson
from django.conf import settings

from models_registry.catalog import DeploymentSpec, ModelEntry, RouteSpec, get_catalog

from . import formats, routing
from .context import CallContext, estimate_prompt_tokens
from .errors import GatewayError
from .http import SSE_HEADERS, ApiResponse
from .translate.errors import upstream_connection_error, upstream_error_to_gateway, upstream_timeout
from .translate.sse import DONE, SSEDecoder, encode_sse
from .upstream.client import post_signed, provider_url, trace

log = logging.getLogger("gateway.chat")

KEEP_ALIVE = b": keep-alive\n\n"
# A Cohere stream whose finish event carried no usage: how long to wait for a separate usage event (COHEREV2
# may send one after the finish) before ending the stream with an estimate.
USAGE_GRACE_SECONDS = 1.0
NON_STREAM_TOTAL_S = 600.0  # a non-streaming call never waits longer than this for its body

_background: set[asyncio.Task] = set()


def _keep(task: asyncio.Task) -> None:
    """Hold a reference to a fire-and-forget task until it ends (asyncio keeps only weak ones)."""
    _background.add(task)
    task.add_done_callback(_background.discard)


def chat_url(d: DeploymentSpec, stream: bool) -> tuple[str, dict[str, str]]:
    """The upstream URL for a chat call, and any headers that URL form needs."""
    if d.api_format != "OPENAI":
        return f"{d.base_url}/20231130/actions/chat", {}
    if d.is_provider:
        return provider_url(d, "chat/completions"), {}
    if d.kind == "datascience":
        base = d.base_url
        if stream and base.endswith("/predict"):
            base = base[: -len("/predict")] + "/predictWithResponseStream"
        return f"{base}/v1/chat/completions", {}
    return f"{d.base_url}/openai/v1/chat/completions", {"opc-compartment-id": d.compartment_id}


def upstream_body(d: DeploymentSpec, translated: dict) -> bytes:
    if d.api_format == "OPENAI":
        return orjson.dumps(translated)
    return orjson.dumps(
        {"compartmentId": d.compartment_id, "servingMode": d.serving_mode(), "chatRequest": translated}
    )


def prompt_chars(req) -> int:
    total = 0
    for message in req.messages:
        content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    total += len(text)
    return total


async def _upstream_error(ctx: CallContext, d: DeploymentSpec, resp: aiohttp.ClientResponse) -> GatewayError:
    body = await resp.read()
    resp.release()
    error = upstream_error_to_gateway(
        resp.status,
        body,
        profile=d.credential.name,
        deployment=d.name,
        region=d.region,
        compartment=d.compartment_id,
        retry_after=resp.headers.get("retry-after"),
        provider=d.is_provider,
    )
    ctx.fail(error.status, error.type)
    return error


@dataclass
class Attempt:
    """The upstream call that answered: its deployment, translation and (unread) response."""

    d: DeploymentSpec
    fmt: formats.ChatFormat
    translated: object
    upstream_stream: bool
    resp: aiohttp.ClientResponse
    slot: routing.Slot
    started: float

    def release(self, *, ok: bool) -> None:
        """The call is over: free its capacity slot and tell the breaker how it went."""
        if self.slot is None:
            return
        latency = (time.monotonic() - self.started) * 1000
        routing.record_result(self.d, ok=ok, latency_ms=latency if ok else None)
        self.slot.release()
        self.slot = None


def _entry_for(target) -> ModelEntry:
    if isinstance(target, ModelEntry):
        return target
    return ModelEntry(target.name, "", 0, (target,), (RouteSpec(target, 0, 1),))


def _route(ctx: CallContext, entry: ModelEntry) -> list[DeploymentSpec]:
    regions = ctx.principal.allowed_regions
    candidates = routing.candidates(entry, allowed_regions=regions)
    if not candidates:
        raise GatewayError(
            403,
            f"No deployment of '{entry.name}' is in a region your API key may use ({', '.join(sorted(regions))}).",
            type="permission_error",
            code="region_not_allowed",
            param="model",
        )
    return candidates


async def _obtain(ctx: CallContext, req, target) -> Attempt:
    """Call deployments in routing order until one answers, retrying before the first byte.

    Retries (with exponential backoff and full jitter, or the upstream's Retry-After) cover 429, 5xx,
    connection errors and timeouts, up to the model's retry budget and the overall deadline. A 401/403/404
    from one deployment moves on to the next without waiting; a 400 is the client's and ends at once.
    When every attempt failed and the model names a fallback model, that model gets the same treatment.
    """
    entry = _entry_for(target)
    try:
        return await _obtain_from(ctx, req, entry)
    except GatewayError:
        if not entry.fallback:
            raise
        fallback = (await get_catalog()).lookup(entry.fallback)
        if fallback is None:
            raise
        log.info("model %s exhausted its routes; falling back to %s", entry.name, fallback.name)
        ctx.fallback_model = fallback.name
        return await _obtain_from(ctx, req, fallback)
    finally:
        await ctx.end_admission()


async def _obtain_from(ctx: CallContext, req, entry: ModelEntry) -> Attempt:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.REQUEST_DEADLINE_S
    candidates = _route(ctx, entry)
    await routing.refresh_shared_throttled([d.name for d in candidates])
    last_error: GatewayError | None = None
    tries = entry.retry_budget + 1
    position = 0
    for attempt in range(tries):
        d = candidates[position % len(candidates)]
        position += 1
        ctx.deployment = d
        fmt = formats.for_deployment(d)
        translated = fmt.request(req, formats.chat_options(d))  # a 400 here is the client's: no retry
        upstream_stream = bool(req.stream) and not d.force_non_stream and not (
            req.tools and not d.supports_streaming_tools
        )
        if ctx.reservation is None:
            # Limits: reserve on the key's and team's limits with the effective max output (usage/limits.py),
            # beside the signing: post_signed waits for the admission before it sends.
            await ctx.begin_admission(max_output=translated.max_tokens, choices=req.n or 1, cuttable=upstream_stream)
        slot = routing.Slot(d)
        try:
            await slot.__aenter__()
        except routing.CapacityFull:
            last_error = GatewayError(429, f"Deployment {d.name} is at its capacity; try again shortly.",
                                      type="rate_limit_error", code="capacity_exceeded", headers={"retry-after": "1"})
            continue
        started = time.monotonic()
        body = upstream_body(d, fmt.with_stream(translated.chat_request, upstream_stream))
        url, extra = chat_url(d, upstream_stream)
        request_id = ctx.request.request_id if attempt == 0 else f"{ctx.request.request_id}-{attempt}"
        first_byte = min(d.first_byte_timeout_s, settings.UPSTREAM_READ_TIMEOUT, max(deadline - loop.time(), 0.001))
        retry_after = None
        try:
            async with asyncio.timeout(first_byte):  # not wait_for(): on Python 3.11 that is a task per call
                resp = await post_signed(d, url, body, request_id=request_id, stream=upstream_stream,
                                         extra_headers=extra, connect_timeout=d.connect_timeout_s,
                                         admission=ctx.admission)
        except GatewayError as error:  # our own credentials are unusable: no other deployment will do better
            slot.release()
            ctx.fail(error.status, error.type)
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError):
            last_error = upstream_timeout(first_byte)
            ctx.fail(last_error.status, last_error.type)
        except aiohttp.ClientError as exc:
            last_error = upstream_connection_error(f"{type(exc).__name__}: {exc}")
            ctx.fail(last_error.status, last_error.type)
        else:
            ctx.upstream_request_id = resp.headers.get("opc-request-id", "")
            if resp.status < 400:
                return Attempt(d, fmt, translated, upstream_stream, resp, slot, started)
            retry_after = resp.headers.get("retry-after")
            last_error = await _upstream_error(ctx, d, resp)
            if resp.status not in routing.RETRYABLE_STATUS:
                slot.release()
                if resp.status not in (401, 403, 404) or len(candidates) == 1:
                    raise last_error
                routing.record_result(d, ok=False)
                continue  # this deployment cannot serve it; another region may
        slot.release()
        routing.record_result(d, ok=False)
        if attempt + 1 < tries:
            delay = routing.backoff_delay(attempt, retry_after)
            if loop.time() + delay >= deadline:
                break
            await asyncio.sleep(delay)
    raise last_error or upstream_connection_error("no deployment answered")


async def chat_completion(ctx: CallContext, req, target) -> ApiResponse:
    """`target`: the model's catalog entry (routed, retried, with fallback) or one deployment."""
    client_stream = bool(req.stream)
    ctx.streamed = client_stream
    completion_id = "chatcmpl-" + ctx.request.request_id.lower()
    created = int(time.time())
    if not client_stream:  # in this task: a client that leaves cancels it, and with it the upstream call
        return await _complete(ctx, await _obtain(ctx, req, target), completion_id, created)
    task = asyncio.ensure_future(_obtain(ctx, req, target))

    # Streamed: wait for upstream's first byte up to one heartbeat, so an upstream error can still
    # set the HTTP status; after that, commit to 200 and keep the connection warm with comments while
    # the routing and retries go on (nothing but comments has gone to the client yet).
    done, _ = await asyncio.wait({task}, timeout=_heartbeat())
    if done:
        attempt = task.result()
        task = None
    else:
        attempt = None
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    headers = dict(SSE_HEADERS)
    if attempt is not None:
        headers.update(_answer_headers(ctx, attempt))
    gen = _stream(ctx, req, task, attempt, completion_id, created, include_usage)
    return ApiResponse(status=200, stream=gen, content_type="text/event-stream", headers=headers)


def _answer_headers(ctx: CallContext, attempt: Attempt) -> dict[str, str]:
    headers = {"x-gateway-deployment": attempt.d.name}
    if attempt.translated.dropped:
        headers["x-gateway-dropped-params"] = ",".join(attempt.translated.dropped)
    if ctx.fallback_model:
        headers["x-gateway-fallback-model"] = ctx.fallback_model
    return headers


def _heartbeat() -> float:
    return settings.HEARTBEAT_SECONDS


async def _complete(ctx: CallContext, attempt: Attempt, completion_id: str, created: int) -> ApiResponse:
    d, resp = attempt.d, attempt.resp
    ok = False
    try:
        async with asyncio.timeout(min(d.total_timeout_s, NON_STREAM_TOTAL_S)):
            raw = await resp.read()
        ok = True
    except (TimeoutError, aiohttp.ServerTimeoutError):
        error = upstream_timeout(min(d.total_timeout_s, NON_STREAM_TOTAL_S))
        ctx.fail(error.status, error.type)
        raise error from None
    except aiohttp.ClientError as exc:
        error = upstream_connection_error(f"{type(exc).__name__}: {exc}")
        ctx.fail(error.status, error.type)
        raise error from None
    finally:
        resp.release()
        attempt.release(ok=ok)
    completion = attempt.fmt.response(
        orjson.loads(raw), model=ctx.public_model, completion_id=completion_id, created=created,
        turn=attempt.translated.turn,
    )
    ctx.mark_first_token()
    ctx.usage = completion.get("usage")
    ctx.usage_source = "upstream" if ctx.usage else "none"
    return ApiResponse(status=200, body=orjson.dumps(completion), headers=_answer_headers(ctx, attempt))


async def _stream(ctx, req, task, attempt, completion_id, created, include_usage):
    heartbeat = _heartbeat()
    translator = None
    pending: list[bytes] = []
    resp = None
    draining = False
    ok = False
    try:
        if attempt is None:
            # Routing and retries are still going on: keep-alive comments until an upstream answers.
            while True:
                done, _ = await asyncio.wait({task}, timeout=heartbeat)
                if done:
                    break
                yield KEEP_ALIVE
            task = None
            try:
                attempt = done.pop().result()
            except GatewayError as error:
                yield encode_sse(error.envelope())
                yield DONE
                return
        d, fmt, resp, upstream_stream = attempt.d, attempt.fmt, attempt.resp, attempt.upstream_stream
        turn = attempt.translated.turn
        translator = fmt.stream_translator(model=ctx.public_model, completion_id=completion_id, created=created,
                                           turn=turn)
        if not upstream_stream:
            # Served from a non-streamed upstream call (streaming tools off, or force_non_stream).
            raw = await resp.read()
            resp.release()
            completion = fmt.response(
                orjson.loads(raw), model=ctx.public_model, completion_id=completion_id, created=created, turn=turn
            )
            ctx.mark_first_token()
            for chunk in formats.completion_to_chunks(completion):
                yield encode_sse(chunk)
            ctx.usage, ctx.usage_source = completion.get("usage"), "upstream"
            if include_usage and ctx.usage:
                yield encode_sse(
                    {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                     "model": ctx.public_model, "choices": [], "usage": ctx.usage}
                )
            ok = True
            await ctx.record_durable()
            yield DONE
            return

        decoder = SSEDecoder()
        content = resp.content
        # The events of one read go to the client in one write: OCI often sends several per TCP segment (all of
        # them at 0 ms upstream latency), and a write per event was most of the relay's CPU per chunk.
        upstream_done = False
        tracing = settings.GATEWAY_TRACE_UPSTREAM
        loop = asyncio.get_running_loop()
        last_event, ends_at = loop.time(), loop.time() + d.total_timeout_s
        usage_deadline = None  # set when a Cohere stream finished without usage
        token_sent = False
        while not upstream_done:
            wait = heartbeat
            if usage_deadline is not None:
                wait = min(heartbeat, usage_deadline - loop.time())
                if wait <= 0:
                    break
            try:
                async with asyncio.timeout(wait):
                    data = await content.readany()
            except TimeoutError:
                now = loop.time()
                if now - last_event > d.idle_timeout_s or now > ends_at:
                    raise _MidStreamError(
                        {"error": {"message": f"no event from OCI for {now - last_event:.0f} s (deployment {d.name})"}}
                    ) from None
                if usage_deadline is None:
                    yield KEEP_ALIVE
                continue
            last_event = loop.time()
            if not data:
                break  # EOF
            for payload in decoder.feed(data):
                if tracing:
                    trace.info("upstream event %s: %s", ctx.request.request_id, payload)
                if payload == "[DONE]":
                    upstream_done = True
                    break
                event = orjson.loads(payload)
                if isinstance(event, dict) and "error" in event and len(event) <= 2 and "choices" not in event:
                    raise _MidStreamError(event)
                chunks = translator.feed_sse(event)
                # Budget: relay only the output the reservation holds; extend it, or stop at this event.
                allowance = ctx.output_allowance
                if (allowance is not None and translator.content_events > allowance
                        and not await ctx.extend_output(translator.content_events)):
                    raise _BudgetExhausted(translator.content_events - 1)
                if chunks:
                    pending += chunks
                    if ctx.ttft_ms is None:
                        ctx.mark_first_token()
                    if not token_sent and translator.content_events:
                        # The first token leaves at once; the events after it go with the rest of their read.
                        token_sent = True
                        yield b"".join(pending)
                        pending.clear()
                if translator.finished and fmt.stops_on_finish:
                    # Cohere sends no [DONE] and may keep the connection open after its finish event. Usage
                    # rides on the finish event, or (COHEREV2) follows it in its own event: keep reading the
                    # events already received, and wait a moment for one that is not.
                    if translator.usage is not None:
                        upstream_done = True
                        break
                    if usage_deadline is None:
                        usage_deadline = loop.time() + USAGE_GRACE_SECONDS
            if pending:
                yield pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
        if not translator.finished:
            raise _MidStreamError({"error": {"message": "upstream stream ended before its finish event"}})
        if translator.usage:
            ctx.usage, ctx.usage_source = translator.usage, "upstream"
        else:
            _estimate(ctx, req, translator)  # upstream reported none: bill a lower-bound estimate, never zero
        if include_usage and ctx.usage:
            yield encode_sse(
                {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                 "model": ctx.public_model, "choices": [], "usage": ctx.usage}
            )
        ok = True
        await ctx.record_durable()
        yield DONE
    except _BudgetExhausted as exc:
        # The budget ran out mid-stream: stop upstream, bill what was relayed, end the stream cleanly.
        if pending:
            yield b"".join(pending)  # the events of this read that the budget held
        if resp is not None:
            resp.close()
        ctx.fail(429, "insufficient_quota")
        prompt = estimate_prompt_tokens(prompt_chars(req))
        ctx.usage = {"prompt_tokens": prompt, "completion_tokens": exc.relayed, "total_tokens": prompt + exc.relayed}
        ctx.usage_source = "estimated"
        await ctx.record_durable()
        yield encode_sse(
            {"error": {"message": "The budget of this API key or its team ran out during the answer; it was cut "
                                  "here.", "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
        )
        yield DONE
    except _MidStreamError as exc:
        if pending:
            yield b"".join(pending)
        message = (exc.event.get("error") or {}).get("message") or "upstream error"
        ctx.fail(502, "upstream_unavailable")
        _estimate(ctx, req, translator)
        yield encode_sse(
            {"error": {"message": f"Upstream error mid-stream: {message}", "type": "upstream_unavailable",
                       "param": None, "code": "upstream_error"}}
        )
        yield DONE
    except (aiohttp.ClientError, TimeoutError) as exc:
        ctx.fail(502, "upstream_unavailable")
        _estimate(ctx, req, translator)
        yield encode_sse(
            {"error": {"message": f"Upstream connection failed mid-stream: {type(exc).__name__}",
                       "type": "upstream_unavailable", "param": None, "code": "upstream_error"}}
        )
        yield DONE
    except asyncio.CancelledError:
        # The client left. Bill what was relayed (a lower bound), unless the deployment drains.
        ctx.fail(499, "client_disconnected")
        if task is not None and not task.done():
            task.cancel()
        if resp is not None and translator is not None and attempt.d.drain_on_disconnect:
            _keep(asyncio.get_running_loop().create_task(_drain(ctx, req, resp, translator)))
            resp, draining = None, True
        else:
            _estimate(ctx, req, translator)
        raise
    finally:
        if resp is not None:
            resp.close()
        if task is not None and not task.done():
            task.cancel()
        if attempt is not None:
            attempt.release(ok=ok or ctx.status < 500)
        if not draining:  # a drain task records once it has OCI's own counts
            ctx.record()


class _BudgetExhausted(Exception):
    def __init__(self, relayed: int) -> None:
        super().__init__(f"budget exhausted after {relayed} events")
        self.relayed = relayed


class _MidStreamError(Exception):
    def __init__(self, event: dict) -> None:
        super().__init__(str(event))
        self.event = event


def _estimate(ctx: CallContext, req, translator) -> None:
    if translator is None:  # no upstream answered yet: only the prompt estimate
        prompt = estimate_prompt_tokens(prompt_chars(req))
        ctx.usage, ctx.usage_source = {"prompt_tokens": prompt, "completion_tokens": 0, "total_tokens": prompt}, (
            "estimated"
        )
        return
    if translator.usage:
        ctx.usage, ctx.usage_source = translator.usage, "upstream"
        return
    completion = translator.content_events
    prompt = estimate_prompt_tokens(prompt_chars(req))
    ctx.usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    ctx.usage_source = "estimated"


async def _drain(ctx: CallContext, req, resp: aiohttp.ClientResponse, translator, limit_s: float = 120.0) -> None:
    """Read the rest of upstream (bounded) to bill OCI's own usage for a client that left."""
    decoder = SSEDecoder()
    try:
        async with asyncio.timeout(limit_s):
            async for data in resp.content.iter_any():
                for payload in decoder.feed(data):
                    if payload != "[DONE]":
                        translator.feed(orjson.loads(payload))
                if translator.usage is not None:
                    break
    except Exception as exc:
        log.info("drain of %s ended early: %s", ctx.request.request_id, type(exc).__name__)
    finally:
        resp.close()
        _estimate(ctx, req, translator)
        ctx.record()
