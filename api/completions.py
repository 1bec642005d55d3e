"""POST /v1/completions: the legacy prompt API, served through chat for chat models.

Each prompt becomes one chat turn sent through `api.chat.chat_completion`, and the answer is reshaped into
`text_completion` objects (streamed or not). Several prompts (OpenAI's batch form, which LangChain's
`OpenAI` LLM sends) become one chat call each, with choice `i` of prompt `p` at index `p·n + i`: those run
concurrently when not streamed, one after another when streamed. The calls of a batch run under child
contexts that never record; the call's one usage record carries their summed usage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson

from models_registry.catalog import DeploymentSpec

from . import chat
from .context import CallContext
from .errors import GatewayError, bad_request
from .http import SSE_HEADERS, ApiResponse
from .schemas import CompletionsRequest, parse_chat_request
from .translate import completions as tr
from .translate.sse import DONE, SSEDecoder, encode_sse


def _chat_request(req: CompletionsRequest, prompt: str):
    return parse_chat_request(orjson.dumps(tr.chat_body(req, prompt)))


def _headers(resp: ApiResponse, dropped: list[str]) -> dict[str, str]:
    headers = {k: v for k, v in resp.headers.items() if k.lower().startswith("x-gateway-")}
    names = [n for n in resp.headers.get("x-gateway-dropped-params", "").split(",") if n]
    names += [n for n in dropped if n not in names]
    if names:
        headers["x-gateway-dropped-params"] = ",".join(names)
    return headers


def _child(ctx: CallContext, index: int) -> CallContext:
    """A context for prompt `index` of a batch: its own upstream request id, and no record of its own."""
    request = dataclasses.replace(ctx.request, request_id=f"{ctx.request.request_id}-{index}")
    return CallContext(request=request, principal=ctx.principal, endpoint=ctx.endpoint,
                       public_model=ctx.public_model, deployment=ctx.deployment, recorded=True)


def _output_length(req: CompletionsRequest, d: DeploymentSpec) -> int | None:
    """The output length each prompt may use: the client's, else the deployment's default, within its cap."""
    out = req.max_tokens or d.default_max_tokens
    if out and d.max_output_tokens:
        out = min(out, d.max_output_tokens)
    return out


async def create_completion(ctx: CallContext, req: CompletionsRequest, d: DeploymentSpec) -> ApiResponse:
    dropped = tr.unsupported_params(req)
    if dropped and d.unsupported_params == "reject":
        name = dropped[0]
        raise bad_request(f"{name}: is not supported by this model (legacy completions are served through chat)",
                          param=name)
    prompts = req.prompts
    n = req.n or 1
    cid = tr.completion_id(ctx.request.request_id)
    echo = bool(req.echo)

    if len(prompts) == 1:
        resp = await chat.chat_completion(ctx, _chat_request(req, prompts[0]), d)
        headers = _headers(resp, dropped)
        if resp.stream is None:
            completion = orjson.loads(resp.body)
            body = tr.completion_object(
                cid=cid, created=completion.get("created") or int(time.time()), model=ctx.public_model,
                choices=tr.choices_from_chat(completion, offset=0, echo=prompts[0] if echo else None),
                usage=completion.get("usage"),
            )
            return ApiResponse(status=200, body=orjson.dumps(body), headers=headers)
        gen = _relay(resp.stream, cid=cid, model=ctx.public_model, offset=0, n=n,
                     echo=prompts[0] if echo else None, last=True)
        return ApiResponse(status=200, stream=gen, content_type="text/event-stream",
                           headers={**SSE_HEADERS, **headers})

    # One prompt is admitted by the chat call with its effective output length; a batch's child calls never
    # reserve, so the batch reserves for all of its prompts here.
    await ctx.admit(max_output=_output_length(req, d), choices=n * len(prompts), cuttable=False)
    if not req.stream:
        return await _batch(ctx, req, d, prompts, cid, n, dropped)
    ctx.streamed = True
    first = _child(ctx, 0)
    try:
        resp = await chat.chat_completion(first, _chat_request(req, prompts[0]), d)
    except GatewayError:
        ctx.usage, ctx.usage_source = first.usage, first.usage_source
        raise
    ctx.upstream_request_id = first.upstream_request_id
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    gen = _relay_batch(ctx, req, d, prompts, first, resp, cid=cid, n=n, include_usage=include_usage)
    return ApiResponse(status=200, stream=gen, content_type="text/event-stream",
                       headers={**SSE_HEADERS, **_headers(resp, dropped)})


async def _batch(ctx, req, d, prompts, cid, n, dropped) -> ApiResponse:
    children = [_child(ctx, i) for i in range(len(prompts))]
    tasks = [asyncio.create_task(chat.chat_completion(c, _chat_request(req, p), d))
             for c, p in zip(children, prompts, strict=True)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:  # a failed prompt fails the batch; a client that left stops it too
            if not t.done():
                t.cancel()
    failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None), None)
    if failed is not None:
        await asyncio.gather(*tasks, return_exceptions=True)
    _sum_usage(ctx, children)
    ctx.upstream_request_id = children[0].upstream_request_id
    if failed is not None:
        error = failed.exception()
        if isinstance(error, GatewayError):
            ctx.fail(error.status, error.type)
        raise error
    choices, created = [], int(time.time())
    for i, (t, prompt) in enumerate(zip(tasks, prompts, strict=True)):
        completion = orjson.loads(t.result().body)
        created = completion.get("created") or created
        choices += tr.choices_from_chat(completion, offset=i * n, echo=prompt if req.echo else None)
    ctx.mark_first_token()
    body = tr.completion_object(cid=cid, created=created, model=ctx.public_model, choices=choices, usage=ctx.usage)
    return ApiResponse(status=200, body=orjson.dumps(body), headers=_headers(tasks[0].result(), dropped))


def _sum_usage(ctx: CallContext, children: list[CallContext]) -> None:
    total = None
    for child in children:
        total = tr.add_usage(total, child.usage)
    if total is not None:
        ctx.usage = total
        estimated = any(c.usage and c.usage_source == "estimated" for c in children)
        ctx.usage_source = "estimated" if estimated else "upstream"


async def _relay(stream, *, cid: str, model: str, offset: int, n: int, echo: str | None, last: bool):
    """Chat SSE bytes → legacy chunks. With `last` false, [DONE] and usage-only chunks are held back
    (the batch relay sends one usage chunk and one [DONE] for the whole batch)."""
    decoder = SSEDecoder()
    try:
        if echo is not None:
            created = int(time.time())
            for i in range(n):
                yield encode_sse(tr.echo_chunk(cid=cid, created=created, model=model, index=offset + i, prompt=echo))
        async for piece in stream:
            if piece.startswith(b":"):  # keep-alive comment
                yield piece
                continue
            for payload in decoder.feed(piece):
                if payload == "[DONE]":
                    if last:
                        yield DONE
                    continue
                event = orjson.loads(payload)
                if "error" in event and "choices" not in event:
                    yield encode_sse(event)
                    continue
                chunk = tr.chunk_from_chat(event, cid=cid, offset=offset)
                if chunk is not None and (last or chunk["choices"]):
                    yield encode_sse(chunk)
    finally:
        # Closing the chat stream runs its own disconnect handling and usage bookkeeping.
        await stream.aclose()


async def _relay_batch(ctx, req, d, prompts, first, first_resp, *, cid, n, include_usage):
    children = [first]
    failed = False
    try:
        for i, prompt in enumerate(prompts):
            if i == 0:
                resp = first_resp
            else:
                child = _child(ctx, i)
                children.append(child)
                try:
                    resp = await chat.chat_completion(child, _chat_request(req, prompt), d)
                except GatewayError as error:
                    ctx.fail(error.status, error.type)
                    yield encode_sse(error.envelope())
                    failed = True
                    break
            async for piece in _relay(resp.stream, cid=cid, model=ctx.public_model, offset=i * n, n=n,
                                      echo=prompt if req.echo else None, last=False):
                ctx.mark_first_token()
                yield piece
            if children[-1].status >= 400:  # the chat relay already sent the error event
                ctx.fail(children[-1].status, children[-1].error_type)
                failed = True
                break
        _sum_usage(ctx, children)
        if include_usage and ctx.usage and not failed:
            yield encode_sse({"id": cid, "object": "text_completion", "created": int(time.time()),
                              "model": ctx.public_model, "choices": [], "usage": ctx.usage})
        yield DONE
    except asyncio.CancelledError:
        ctx.fail(499, "client_disconnected")
        raise
    finally:
        _sum_usage(ctx, children)
        ctx.record()
