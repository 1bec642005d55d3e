"""Thin Django adapters around the transport-agnostic handlers in api/handlers.py."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from . import handlers
from .client_ip import client_ip
from .http import ApiRequest, ApiResponse
from .upstream.client import new_request_id


def to_api_request(request: HttpRequest) -> ApiRequest:
    headers = {name.lower(): value for name, value in request.headers.items()}
    return ApiRequest(
        method=request.method or "GET",
        path=request.path,
        headers=headers,
        body=request.body,
        client_ip=client_ip(request.META.get("REMOTE_ADDR"), headers),
        request_id=getattr(request, "scope", {}).get("gateway.request_id") or new_request_id(),
        query={k: v for k, v in request.GET.items()},
    )


def to_django(response: ApiResponse) -> HttpResponse:
    if response.stream is not None:
        out = StreamingHttpResponse(response.stream, status=response.status, content_type=response.content_type)
    else:
        out = HttpResponse(response.body, status=response.status, content_type=response.content_type)
    for name, value in response.headers.items():
        out[name] = value
    return out


def endpoint(handler, methods: tuple[str, ...]):
    @csrf_exempt
    async def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        api_request = to_api_request(request)
        if request.method not in methods:
            from .errors import GatewayError
            from .http import error_response

            response = error_response(
                GatewayError(405, f"Method {request.method} not allowed; use {' or '.join(methods)}.",
                             code="method_not_allowed")
            )
            response.headers["allow"] = ", ".join(methods)
            return to_django(response)
        return to_django(await handlers.dispatch(handler, api_request, *kwargs.values()))

    view.__name__ = handler.__name__
    return view
