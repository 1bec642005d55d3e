"""ASGI entry point.

Pure ASGI wrappers handle what every request needs (lifespan, health and readiness, request ids, CORS) so that
the `/v1` path runs through a Django handler with no middleware at all, while the admin and the
dashboards keep the full middleware stack. Websockets go to Channels.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.base import BaseHandler  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402

from . import background  # noqa: E402

log = logging.getLogger("gateway.asgi")


class LeanApiHandler(ASGIHandler):
    """Django's ASGI handler with no middleware and the API URLconf: no thread hop per middleware."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        handler = convert_exception_to_response(get_response)
        self._middleware_chain = self.adapt_method_mode(is_async, handler, is_async)

    async def get_response_async(self, request):
        request.urlconf = settings.API_URLCONF
        return await BaseHandler.get_response_async(self, request)


_API_UNPREFIXED = ("/chat/completions", "/completions", "/embeddings", "/rerank", "/models", "/usage")


def is_api_path(path: str) -> bool:
    prefix = settings.API_ROUTE_PREFIX.rstrip("/")
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        return True
    return path in _API_UNPREFIXED or path.startswith("/models/")


CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, content-type, api-key, x-api-key, x-request-id, openai-beta"),
    (b"access-control-max-age", b"600"),
]


async def _simple(send, status: int, body: bytes, content_type: bytes = b"application/json", extra=()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _ready(send) -> None:
    """Readiness (database, catalog, an unopened route per model): api/readiness.py."""
    import orjson

    from api.readiness import readiness

    status, body = await readiness()
    await _simple(send, status, orjson.dumps(body), extra=[(b"cache-control", b"no-store")])


def _request_id(scope) -> str:
    """The gateway's id of this request: fresh every time, prefixed with the client's X-Request-Id if any.

    The id keys the request's one usage record (records are deduplicated by it), so a client that reuses
    its own id, or sends a constant one, must still get a record per request: its id is kept as a prefix
    for correlation (logs, the upstream opc-request-id), never used alone.
    """
    from api.upstream.client import new_request_id

    fresh = new_request_id()
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")[:40]
            if candidate and candidate.replace("-", "").replace("_", "").isalnum():
                return f"{candidate}-{fresh[:16]}"
    return fresh


def build_application(api_serving: str | None = None):
    django_app = get_asgi_application()
    api_app = LeanApiHandler()
    # /v1 through the raw ASGI adapter (default) or Django's async views: see docs/benchmarks.md.
    raw_api = (api_serving or settings.API_SERVING) == "asgi"
    from api import asgi_adapter
    websocket_app = _websocket_app()

    async def app(scope, receive, send):
        kind = scope["type"]
        if kind == "lifespan":
            return await background.lifespan(scope, receive, send)
        if kind == "websocket":
            return await websocket_app(scope, receive, send)
        background.ensure_started()
        path = scope["path"]
        if path == "/health":
            return await _simple(send, 200, b'{"status":"ok"}')
        if path == "/ready":
            return await _ready(send)
        if is_api_path(path):
            if scope["method"] == "OPTIONS":
                return await _simple(send, 204, b"", extra=CORS_HEADERS)
            scope = dict(scope)
            request_id = _request_id(scope)
            scope["gateway.request_id"] = request_id

            async def send_with_cors(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()), CORS_HEADERS[0]]}
                await send(message)

            if raw_api:
                return await asgi_adapter.handle(scope, receive, send_with_cors, request_id)
            return await api_app(scope, receive, send_with_cors)
        return await django_app(scope, receive, send)

    return app


def _websocket_app():
    try:
        from usage.routing import websocket_application

        return websocket_application
    except ImportError:

        async def reject(scope, receive, send):
            await send({"type": "websocket.close", "code": 4404})

        return reject


application = build_application()
