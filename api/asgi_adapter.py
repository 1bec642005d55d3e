"""A raw ASGI adapter for the `/v1` handlers: no Django request cycle on the hot path.

Django's ASGI handler makes thread hops per request (request_started/finished receivers, response
close) even with no middleware; the handlers in api/handlers.py need none of that, so this adapter
calls them directly. It keeps what Django did for us: the body size cap, and cancelling the response
when the client disconnects, which raises CancelledError inside a streaming generator so the
upstream call is closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qsl

from django.conf import settings

from .client_ip import client_ip
from .errors import GatewayError
from .handlers import dispatch
from .http import ApiRequest, ApiResponse, error_response
from .routes import ROUTES


class Router:
    def __init__(self) -> None:
        self.exact: dict[str, tuple] = {}
        self.prefixed: list[tuple[str, tuple]] = []
        prefix = settings.API_ROUTE_PREFIX.rstrip("/")
        for route, handler, methods in ROUTES:
            for base in {prefix, ""}:
                path = f"{base}/{route}"
                if path.endswith("/{model}"):
                    self.prefixed.append((path[: -len("{model}")], (handler, methods)))
                else:
                    self.exact[path] = (handler, methods)

    def match(self, path: str) -> tuple[tuple | None, tuple]:
        hit = self.exact.get(path)
        if hit is not None:
            return hit, ()
        for start, target in self.prefixed:
            if path.startswith(start) and len(path) > len(start):
                return target, (path[len(start):],)
        return None, ()


_router: Router | None = None


def router() -> Router:
    global _router
    if _router is None:
        _router = Router()
    return _router


def _not_found(path: str) -> ApiResponse:
    return error_response(GatewayError(404, f"Unknown path {path}.", code="unknown_path"))


async def _read_body(receive, limit: int) -> bytes | None:
    """The whole body, or None when it is over `limit` (the rest is drained, not kept)."""
    chunks, size, too_big = [], 0, False
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            too_big = True
        elif body:
            chunks.append(body)
        if not message.get("more_body"):
            break
    return None if too_big else b"".join(chunks)


async def _send_response(send, response: ApiResponse) -> None:
    headers = [(b"content-type", response.content_type.encode())]
    headers += [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in response.headers.items()]
    if response.stream is None:
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        return
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    async with contextlib.aclosing(response.stream) as stream:
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _cancel_on_disconnect(receive, task: asyncio.Task) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            task.cancel()
            return


async def handle(scope, receive, send, request_id: str) -> None:
    path = scope["path"]
    target, args = router().match(path)
    method = scope["method"]
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    peer = scope.get("client")
    request = ApiRequest(
        method=method, path=path, headers=headers, body=b"", request_id=request_id,
        client_ip=client_ip(peer[0] if peer else None, headers),
        query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
    )
    try:
        body = await _read_body(receive, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    except asyncio.CancelledError:
        return  # the client left before sending its body
    if target is None:
        response = _not_found(path)
    elif method not in target[1]:
        response = error_response(GatewayError(405, f"Method {method} not allowed; use {' or '.join(target[1])}.",
                                               code="method_not_allowed"))
        response.headers["allow"] = ", ".join(target[1])
    elif body is None:
        response = error_response(GatewayError(413, "Request body is larger than this gateway accepts.",
                                               code="request_too_large"))
    else:
        request.body = body
        # The handler runs in this task; a watcher cancels it if the client leaves (CancelledError inside the
        # handler or its stream). One task per request rather than two and an asyncio.wait().
        this = asyncio.current_task()
        watcher = asyncio.get_running_loop().create_task(_cancel_on_disconnect(receive, this))
        after = None
        try:
            after = await _respond(send, target[0], request, args)
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():
                raise  # the server's own cancellation (shutdown), not the client's departure
            this.uncancel()
        finally:
            # No await between the response's last byte and here: the disconnect that uvicorn reports once
            # the response is complete cannot cancel a finished handler.
            watcher.cancel()
        if after is not None:
            await after()  # the usage record's acknowledgement, awaited once the client has its answer
        return
    response.headers["x-request-id"] = request_id
    await _send_response(send, response)


async def _respond(send, handler, request: ApiRequest, args: tuple):
    """Send the handler's response; return its `after` work (api/http.py), for once the response has left."""
    response = await dispatch(handler, request, *args, after_sent=True)
    after, response.after = response.after, None
    try:
        await _send_response(send, response)
    except BaseException:
        if after is not None:
            await after()  # not sent (the client left): the record's acknowledgement is still awaited
        raise
    return after
