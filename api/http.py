"""Transport-agnostic request and response shapes for the `/v1` handlers.

The Django views (api/views.py) only convert to and from these, so the serving layer can change
without touching the logic in api/handlers.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from .errors import GatewayError


@dataclass(slots=True)
class ApiRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    client_ip: str | None
    request_id: str
    query: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ApiResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None
    content_type: str = "application/json"
    # Work for after the response has left (the usage record's acknowledgement by Redis); dispatch() runs it
    # before returning unless its caller sends the response first and runs it itself (api/asgi_adapter.py).
    after: Callable[[], Awaitable[None]] | None = None


def json_response(obj, status: int = 200, headers: dict[str, str] | None = None) -> ApiResponse:
    return ApiResponse(status=status, body=orjson.dumps(obj), headers=headers or {})


def error_response(error: GatewayError) -> ApiResponse:
    return ApiResponse(status=error.status, body=error.body(), headers=dict(error.headers))


SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
