"""POST /v1/chat/completions: route, translate, call OCI, translate back (streamed or not)."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import orjson
from django.conf import settings

from models_registry.catalog import DeploymentSpec

from . import formats
from .context import CallContext, estimate_prompt_tokens
from .errors import GatewayError
from .http import SSE_HEADERS, ApiResponse
from .translate.errors import upstream_connection_error, upstream_error_to_gateway, upstream_timeout
from .translate.sse import DONE, SSEDecoder, encode_sse
from .upstream.client import post_signed, trace

log = logging.getLogger("gateway.chat")

KEEP_ALIVE = b": keep-alive\n\n"
# A Cohere stream whose finish event carried no usage: how long to wait for a separate usage event (COHEREV2
# may send one after the finish) before ending the stream with an estimate.
USAGE_GRACE_SECONDS = 1.0


def chat_url(d: DeploymentSpec, stream: bool) -> tuple[str, dict[str, str]]:
    """The upstream URL for a chat call, and any headers that URL form needs."""
    if d.api_format != "OPENAI":
        return f"{d.base_url}/20231130/actions/chat", {}
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
    )
    ctx.fail(error.status, error.type)
    return error


async def chat_completion(ctx: CallContext, req, d: DeploymentSpec) -> ApiResponse:
    fmt = formats.for_deployment(d)
    opts = formats.chat_options(d)
    translated = fmt.request(req, opts)
    client_stream = bool(req.stream)
    upstream_stream = client_stream and not d.force_non_stream and not (req.tools and not d.supports_streaming_tools)
    ctx.streamed = client_stream
    body = upstream_body(d, fmt.with_stream(translated.chat_request, upstream_stream))
    url, extra = chat_url(d, upstream_stream)
    headers = {"x-gateway-deployment": d.name}
    if translated.dropped:
        headers["x-gateway-dropped-params"] = ",".join(translated.dropped)
    completion_id = "chatcmpl-" + ctx.request.request_id.lower()
    created = int(time.time())
    # Limits: reserve on the key's and team's limits with the effective max output (usage/limits.py).
    await ctx.admit(max_output=translated.max_tokens, choices=req.n or 1, cuttable=upstream_stream)

    call = asyncio.ensure_future(
        post_signed(d, url, body, request_id=ctx.request.request_id, stream=upstream_stream, extra_headers=extra)
    )
    if not client_stream:
        resp = await _await_upstream(ctx, call)
        return await _complete(ctx, d, fmt, translated, resp, completion_id, created, headers)

    # Streamed: wait for upstream's first byte up to one heartbeat, so an upstream error can still
    # set the HTTP status; after that, commit to 200 and keep the connection warm with comments.
    done, _ = await asyncio.wait({call}, timeout=_heartbeat())
    if done:
        resp = await _await_upstream(ctx, call)
        if resp.status >= 400:
            raise await _upstream_error(ctx, d, resp)
        call = None
        first = resp
    else:
        first = None
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    gen = _stream(ctx, req, d, fmt, translated.turn, call, first, upstream_stream, completion_id, created,
                  include_usage)
    return ApiResponse(
        status=200, stream=gen, content_type="text/event-stream", headers={**SSE_HEADERS, **headers}
    )


def _heartbeat() -> float:
    return settings.HEARTBEAT_SECONDS


def _read_timeout() -> float:
    return settings.UPSTREAM_READ_TIMEOUT


async def _await_upstream(ctx: CallContext, call: asyncio.Future) -> aiohttp.ClientResponse:
    try:
        resp = await call
    except GatewayError as error:
        ctx.fail(error.status, error.type)
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError):
        error = upstream_timeout(_read_timeout())
        ctx.fail(error.status, error.type)
        raise error from None
    except aiohttp.ClientError as exc:
        error = upstream_connection_error(f"{type(exc).__name__}: {exc}")
        ctx.fail(error.status, error.type)
        raise error from None
    ctx.upstream_request_id = resp.headers.get("opc-request-id", "")
    return resp


async def _complete(ctx, d, fmt, translated, resp, completion_id, created, headers) -> ApiResponse:
    if resp.status >= 400:
        raise await _upstream_error(ctx, d, resp)
    try:
        raw = await resp.read()
    except (TimeoutError, aiohttp.ServerTimeoutError):
        error = upstream_timeout(_read_timeout())
        ctx.fail(error.status, error.type)
        raise error from None
    except aiohttp.ClientError as exc:
        error = upstream_connection_error(f"{type(exc).__name__}: {exc}")
        ctx.fail(error.status, error.type)
        raise error from None
    finally:
        resp.release()
    result = orjson.loads(raw)
    completion = fmt.response(
        result, model=ctx.public_model, completion_id=completion_id, created=created, turn=translated.turn
    )
    ctx.mark_first_token()
    ctx.usage = completion.get("usage")
    ctx.usage_source = "upstream" if ctx.usage else "none"
    return ApiResponse(status=200, body=orjson.dumps(completion), headers=headers)


async def _stream(ctx, req, d, fmt, turn, call, resp, upstream_stream, completion_id, created, include_usage):
    heartbeat = _heartbeat()
    translator = fmt.stream_translator(model=ctx.public_model, completion_id=completion_id, created=created,
                                       turn=turn)
    draining = False
    try:
        if resp is None:
            # Upstream has not answered yet: keep-alive comments until it does.
            while True:
                done, _ = await asyncio.wait({call}, timeout=heartbeat)
                if done:
                    break
                yield KEEP_ALIVE
            try:
                resp = await _await_upstream(ctx, call)
            except GatewayError as error:
                yield encode_sse(error.envelope())
                yield DONE
                return
            if resp.status >= 400:
                error = await _upstream_error(ctx, d, resp)
                yield encode_sse(error.envelope())
                yield DONE
                return
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
            await ctx.record_durable()
            yield DONE
            return

        decoder = SSEDecoder()
        content = resp.content
        upstream_done = False
        tracing = settings.GATEWAY_TRACE_UPSTREAM
        loop = asyncio.get_running_loop()
        usage_deadline = None  # set when a Cohere stream finished without usage
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
                if usage_deadline is None:
                    yield KEEP_ALIVE
                continue
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
                chunks = translator.feed(event)
                # Budget: relay only the output the reservation holds; extend it, or stop at this event.
                allowance = ctx.output_allowance
                if (allowance is not None and translator.content_events > allowance
                        and not await ctx.extend_output(translator.content_events)):
                    raise _BudgetExhausted(translator.content_events - 1)
                for chunk in chunks:
                    ctx.mark_first_token()
                    yield encode_sse(chunk)
                if translator.finished and fmt.stops_on_finish:
                    # Cohere sends no [DONE] and may keep the connection open after its finish event. Usage
                    # rides on the finish event, or (COHEREV2) follows it in its own event: keep reading the
                    # events already received, and wait a moment for one that is not.
                    if translator.usage is not None:
                        upstream_done = True
                        break
                    if usage_deadline is None:
                        usage_deadline = loop.time() + USAGE_GRACE_SECONDS
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
        await ctx.record_durable()
        yield DONE
    except _BudgetExhausted as exc:
        # The budget ran out mid-stream: stop upstream, bill what was relayed, end the stream cleanly.
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
        if call is not None and not call.done():
            call.cancel()
        if resp is not None and d.drain_on_disconnect:
            asyncio.get_running_loop().create_task(_drain(ctx, req, resp, translator))
            resp, draining = None, True
        else:
            _estimate(ctx, req, translator)
        raise
    finally:
        if resp is not None:
            resp.close()
        if call is not None and not call.done():
            call.cancel()
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
