"""POST /v1/embeddings: split into concurrent OCI embedText calls, reassemble in input order.

Retrieval pipelines send hundreds of inputs at once; OCI takes 96 per call. The calls of one request
run concurrently, bounded per deployment (across all requests of the process) by a semaphore, so one
big ingest cannot open hundreds of connections to one model. A failed call fails the whole request
with that call's error; the tokens of the calls that did finish are still recorded (OCI billed them).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from django.conf import settings
from pydantic import ValidationError

from models_registry.catalog import DeploymentSpec

from .context import CallContext, estimate_prompt_tokens
from .errors import GatewayError, bad_request
from .http import ApiResponse
from .schemas import EmbeddingsRequest, validation_error_to_gateway
from .translate import embeddings as tr
from .translate.errors import upstream_connection_error, upstream_error_to_gateway, upstream_timeout
from .upstream.client import post_signed, provider_url

FAILURE_GRACE_SECONDS = 2.0


class EmbeddingsBody(EmbeddingsRequest):
    """The OpenAI body plus OCI's `truncate` and `input_type`; `input` is checked by `tr.parse_input`
    (images and precise `input[i]` errors are beyond the shared text-only schema)."""

    input: Any
    truncate: str | None = None
    input_type: str | None = None


def parse_embeddings_body(raw: bytes) -> EmbeddingsBody:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"Invalid JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("Invalid JSON body: expected a JSON object")
    try:
        return EmbeddingsBody.model_validate(data)
    except ValidationError as exc:
        raise validation_error_to_gateway(exc) from None


# --- the per-deployment concurrency cap ----------------------------------------------------------

_limits: dict[int, tuple[asyncio.AbstractEventLoop, int, asyncio.Semaphore]] = {}


def _semaphore(d: DeploymentSpec) -> asyncio.Semaphore:
    """The deployment's semaphore in this process (recreated when the loop or the setting changes)."""
    loop = asyncio.get_running_loop()
    cap = max(1, settings.EMBEDDINGS_MAX_CONCURRENCY)
    held = _limits.get(d.id)
    if held is None or held[0] is not loop or held[1] != cap:
        held = (loop, cap, asyncio.Semaphore(cap))
        _limits[d.id] = held
    return held[2]


# --- one signed JSON call ------------------------------------------------------------------------


async def call_upstream_json(d: DeploymentSpec, url: str, body: dict, *, request_id: str) -> tuple[dict, str]:
    """POST `body` to OCI and return (decoded result, upstream opc-request-id); errors as GatewayError."""
    try:
        resp = await post_signed(d, url, orjson.dumps(body), request_id=request_id, stream=False)
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise upstream_timeout(settings.UPSTREAM_READ_TIMEOUT) from None
    except aiohttp.ClientError as exc:
        raise upstream_connection_error(f"{type(exc).__name__}: {exc}") from None
    try:
        raw = await resp.read()
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise upstream_timeout(settings.UPSTREAM_READ_TIMEOUT) from None
    except aiohttp.ClientError as exc:
        raise upstream_connection_error(f"{type(exc).__name__}: {exc}") from None
    finally:
        resp.release()
    if resp.status >= 400:
        raise upstream_error_to_gateway(
            resp.status,
            raw,
            profile=d.credential.name,
            deployment=d.name,
            region=d.region,
            compartment=d.compartment_id,
            retry_after=resp.headers.get("retry-after"),
            provider=d.is_provider,
        )
    try:
        result = orjson.loads(raw)
    except orjson.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        raise GatewayError(502, f"Deployment {d.name} answered with a body that is not a JSON object.",
                           type="upstream_unavailable",
                           code="upstream_bad_response")
    return result, resp.headers.get("opc-request-id", "")


async def _embed_call(
    d: DeploymentSpec, url: str, call: tr.EmbedCall, request_id: str, sent: set[int], index: int
) -> tuple[dict, str]:
    async with _semaphore(d):
        sent.add(index)
        try:
            return await call_upstream_json(d, url, call.body, request_id=request_id)
        except GatewayError as error:
            raise tr.remap_error(error, call) from None


# --- the endpoint --------------------------------------------------------------------------------


async def create_embeddings(ctx: CallContext, req: EmbeddingsBody, d: DeploymentSpec) -> ApiResponse:
    if d.is_provider:
        return await _provider_embeddings(ctx, req, d)
    if d.api_format == "OPENAI":
        raise bad_request(f"The model '{ctx.public_model}' is served by an OpenAI-format deployment that "
                          "this gateway does not embed through.", param="model")
    items = tr.parse_input(req.input)
    limit = settings.EMBEDDINGS_MAX_INPUTS
    if len(items) > limit:
        raise bad_request(f"input: {len(items)} inputs; at most {limit} are accepted per request",
                          param="input")
    tr.check_dimensions(req.dimensions, d.model_id, ctx.public_model)
    calls = tr.plan_calls(
        items,
        serving_mode=d.serving_mode(),
        compartment_id=d.compartment_id,
        truncate=tr.normalize_truncate(req.truncate, d.embed_truncate),
        input_type=tr.normalize_input_type(req.input_type),
        dimensions=req.dimensions,
    )
    url = f"{d.base_url}/20231130/actions/embedText"
    rid = ctx.request.request_id
    # One call keeps the gateway's request id; several get <id>-0, <id>-1, ... so each is traceable.
    ids = [rid] if len(calls) == 1 else [f"{rid}-{i}" for i in range(len(calls))]
    sent: set[int] = set()
    tasks = [asyncio.create_task(_embed_call(d, url, call, ids[i], sent, i)) for i, call in enumerate(calls)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
        if failed:
            # Calls still queued are never sent. Calls already sent are billed by OCI whatever we do:
            # give them a short grace to answer, so the record carries their tokens.
            for i, t in enumerate(tasks):
                if i not in sent:
                    t.cancel()
            in_flight = [t for t in tasks if not t.done()]
            if in_flight:
                await asyncio.wait(in_flight, timeout=FAILURE_GRACE_SECONDS)
            for t in in_flight:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            _bill(ctx, calls, tasks, items)
            error = failed[0].exception()
            if isinstance(error, GatewayError):
                ctx.fail(error.status, error.type)
            raise error
    finally:
        for t in tasks:  # the client left (cancellation): stop the calls still queued or in flight
            if not t.done():
                t.cancel()

    vectors: list[list[float] | None] = [None] * len(items)
    for call, task in zip(calls, tasks, strict=True):
        result, _ = task.result()
        for index, vector in zip(call.indices, tr.vectors_of(result, len(call.indices)), strict=True):
            vectors[index] = vector
    ctx.upstream_request_id = tasks[0].result()[1]
    ctx.mark_first_token()
    prompt = _bill(ctx, calls, tasks, items)
    body = tr.embeddings_response(vectors, model=ctx.public_model, encoding_format=req.encoding_format,
                                  prompt_tokens=prompt)
    headers = {"x-gateway-deployment": d.name, "x-gateway-upstream-calls": str(len(calls))}
    return ApiResponse(status=200, body=orjson.dumps(body), headers=headers)


def _bill(ctx: CallContext, calls: list[tr.EmbedCall], tasks: list[asyncio.Task], items: list[tr.EmbedItem]) -> int:
    """Sum OCI's prompt tokens over the calls that finished; estimate a finished call that reported none."""
    prompt, estimated, any_done = 0, False, False
    for call, task in zip(calls, tasks, strict=True):
        if not task.done() or task.cancelled() or task.exception() is not None:
            continue
        any_done = True
        tokens = tr.prompt_tokens_of(task.result()[0])
        if tokens is None:
            estimated = True
            tokens = estimate_prompt_tokens(sum(len(items[i].value) for i in call.indices if not items[i].image))
        prompt += tokens
    if any_done:
        ctx.usage = {"prompt_tokens": prompt, "total_tokens": prompt}
        ctx.usage_source = "estimated" if estimated else "upstream"
    return prompt


async def _provider_embeddings(ctx: CallContext, req: EmbeddingsBody, d: DeploymentSpec) -> ApiResponse:
    """An OpenAI-compatible provider embeds the OpenAI body as it is: one call, its own usage."""
    body = req.model_dump(exclude_none=True, exclude={"truncate", "input_type"})
    body["model"] = d.model_id
    async with _semaphore(d):
        result, upstream_id = await call_upstream_json(d, provider_url(d, "embeddings"), body,
                                                       request_id=ctx.request.request_id)
    ctx.upstream_request_id = upstream_id
    ctx.mark_first_token()
    result["model"] = ctx.public_model
    usage = result.get("usage") if isinstance(result.get("usage"), dict) else None
    if usage and isinstance(usage.get("prompt_tokens"), int):
        ctx.usage = {"prompt_tokens": usage["prompt_tokens"], "total_tokens": usage["prompt_tokens"]}
        ctx.usage_source = "upstream"
    else:
        items = tr.parse_input(req.input)
        prompt = estimate_prompt_tokens(sum(len(i.value) for i in items if not i.image))
        ctx.usage = {"prompt_tokens": prompt, "total_tokens": prompt}
        ctx.usage_source = "estimated"
    return ApiResponse(status=200, body=orjson.dumps(result), headers={"x-gateway-deployment": d.name})
