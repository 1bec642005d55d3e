"""The `/v1` handlers: authenticate, validate, route, and hand off to the endpoint's service.

Transport-agnostic: they take an `ApiRequest` and return an `ApiResponse`; api/views.py adapts them
to Django. Every call that passes authentication leaves exactly one usage record.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC

from django.conf import settings

from models_registry.catalog import ModelEntry, get_catalog
from usage.auth import KeyPrincipal, authenticate, principal_by_name
from usage.limits import snapshot as limits_snapshot

from . import chat
from .context import CallContext
from .errors import GatewayError
from .http import ApiRequest, ApiResponse, error_response, json_response
from .schemas import parse_chat_request

log = logging.getLogger("gateway.api")


def client_secret(request: ApiRequest) -> str:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("api-key") or request.headers.get("x-api-key") or ""


def _anonymous_allowed(request: ApiRequest) -> bool:
    import ipaddress

    if not (settings.GATEWAY_ANONYMOUS_KEY and request.client_ip):
        return False
    try:
        address = ipaddress.ip_address(request.client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in settings.GATEWAY_ANONYMOUS_CIDRS)


async def require_key(request: ApiRequest) -> KeyPrincipal:
    secret = client_secret(request)
    if not secret and _anonymous_allowed(request):
        # Keyless tools from trusted ranges count as the named key: its limits and usage apply.
        principal = await principal_by_name(settings.GATEWAY_ANONYMOUS_KEY)
        if principal is not None:
            return principal
    if not secret:
        raise GatewayError(
            401,
            "Missing API key. Send it as 'Authorization: Bearer <key>'.",
            type="invalid_request_error",
            code="missing_api_key",
        )
    principal = await authenticate(secret)
    if principal is None:
        raise GatewayError(
            401,
            f"Incorrect API key provided: {secret[:6]}****. Ask the gateway's operators for a valid key.",
            type="invalid_request_error",
            code="invalid_api_key",
        )
    return principal


def _owner(entry: ModelEntry) -> str:
    first = entry.deployments[0]
    if first.is_provider:
        namespace, slash, _rest = entry.name.partition("/")
        return namespace if slash else "openai_compatible"
    return first.model_id.split(".", 1)[0] if first.model_id else "oci"


def _model_object(entry: ModelEntry) -> dict:
    return {"id": entry.name, "object": "model", "created": entry.created, "owned_by": _owner(entry)}


async def list_models(request: ApiRequest) -> ApiResponse:
    principal = await require_key(request)
    catalog = await get_catalog()
    data = [_model_object(e) for name, e in catalog.listed() if principal.may_use(name)]
    body: dict = {"object": "list", "data": data}
    if settings.GATEWAY_DEMO_ACTIVE:
        body["gateway_demo"] = "These models are served by the built-in OCI emulator (demo mode)."
    return json_response(body)


async def retrieve_model(request: ApiRequest, model_id: str) -> ApiResponse:
    principal = await require_key(request)
    entry = (await get_catalog()).lookup(model_id)
    if entry is None or not principal.may_use(model_id):
        raise model_not_found(model_id)
    return json_response(_model_object(entry))


def model_not_found(name: str) -> GatewayError:
    return GatewayError(
        404,
        f"The model '{name}' does not exist in this gateway's registry. GET /v1/models lists the models "
        "your key may use.",
        type="invalid_request_error",
        code="model_not_found",
        param="model",
    )


async def resolve_model(ctx: CallContext, name: str, capability: str) -> ModelEntry:
    if not isinstance(name, str) or not name:
        raise GatewayError(400, "model: a model name is required", param="model", code="missing_required_parameter")
    ctx.public_model = name
    entry = (await get_catalog()).lookup(name)
    if entry is None:
        raise model_not_found(name)
    if not ctx.principal.may_use(name):
        raise GatewayError(
            403,
            f"Your API key is not allowed to use the model '{name}'.",
            type="permission_error",
            code="model_not_allowed",
            param="model",
        )
    if capability not in entry.capabilities:
        raise GatewayError(
            400,
            f"The model '{name}' does not support {capability}.",
            param="model",
            code="model_not_supported",
        )
    return entry


def _check_size(request: ApiRequest, limit: int) -> None:
    if len(request.body) > limit:
        raise GatewayError(
            413,
            f"Request body is {len(request.body)} bytes; this endpoint accepts at most {limit} bytes.",
            type="invalid_request_error",
            code="request_too_large",
        )


async def governed(
    request: ApiRequest, endpoint: str, work: Callable[[CallContext], Awaitable[ApiResponse]], *,
    admit: bool = True,
) -> ApiResponse:
    """Authenticate, then run `work`; every outcome after authentication is recorded exactly once.

    Limits (usage/limits.py): with `admit`, the call is reserved on its key's and team's limits before
    `work` runs, from a prompt estimate (and an assumed output length, except for embeddings and rerank);
    endpoints that know their output length pass admit=False and call `ctx.admit()` themselves before the
    upstream call. Recording settles the reservation.
    """
    principal = await require_key(request)
    ctx = CallContext(request=request, principal=principal, endpoint=endpoint)
    try:
        if admit:  # embeddings and rerank produce no output tokens; others reserve the assumed default
            await ctx.admit(max_output=0 if endpoint in ("embeddings", "rerank") else None)
        response = await work(ctx)
    except GatewayError as error:
        ctx.fail(error.status, error.type)
        error.headers = {**ctx.limit_headers(), **error.headers}
        await ctx.record_durable()
        raise
    except BaseException:
        ctx.fail(500, "api_error")
        ctx.record()
        raise
    response.headers.update(ctx.limit_headers())
    if response.stream is None:  # a stream records when it ends
        # The record leaves before the response; Redis's acknowledgement can wait until the response has left.
        response.after = await ctx.record_sent()
    return response


async def chat_completions(request: ApiRequest) -> ApiResponse:
    async def work(ctx: CallContext) -> ApiResponse:
        _check_size(request, settings.CHAT_MAX_BYTES)
        req = parse_chat_request(request.body)
        entry = await resolve_model(ctx, req.model, "chat")
        return await chat.chat_completion(ctx, req, entry)

    # chat admits itself, once the effective max output tokens are known (api/chat.py).
    return await governed(request, "chat.completions", work, admit=False)


def _parse_time(request: ApiRequest, name: str):
    from datetime import datetime

    value = request.query.get(name)
    if not value:
        return None
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value), tz=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise GatewayError(400, f"{name}: expected an ISO 8601 time or Unix seconds", param=name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def key_usage(request: ApiRequest) -> ApiResponse:
    """GET /v1/usage: the calling key's own usage (no start/end: the key's whole life)."""
    from gateway_project.db import run_db
    from usage.selectors import key_usage_summary

    principal = await require_key(request)
    start, end = _parse_time(request, "start"), _parse_time(request, "end")
    summary = await run_db(key_usage_summary, key_id=principal.id, start=start, end=end)
    limits_now = await limits_snapshot(principal)
    return json_response(
        {
            "object": "usage",
            "key": {"name": principal.name, "prefix": principal.prefix, "team": principal.team_name or None},
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            **summary,
            "limits": limits_now["limits"],
            "budget": limits_now["budget"],
        }
    )


async def openapi(request: ApiRequest) -> ApiResponse:
    """GET /v1/openapi.json: no key needed, the description of the API is not a secret."""
    from .openapi import openapi_document

    return json_response(openapi_document())


async def dispatch(handler: Callable[..., Awaitable[ApiResponse]], request: ApiRequest, *args,
                   after_sent: bool = False) -> ApiResponse:
    """Run a handler; any error becomes OpenAI's envelope, never a traceback.

    `after_sent`: the caller runs `response.after` itself once the response has left; otherwise it has run
    when this returns.
    """
    try:
        response = await handler(request, *args)
        if response.after is not None and not after_sent:
            after, response.after = response.after, None
            await after()
    except GatewayError as error:
        response = error_response(error)
    except Exception:
        log.exception("unhandled error in %s (request %s)", handler.__name__, request.request_id)
        response = error_response(
            GatewayError(500, "The gateway failed to handle this request.", type="api_error", code="internal_error")
        )
    response.headers["x-request-id"] = request.request_id
    if settings.GATEWAY_DEMO_ACTIVE:
        response.headers["x-gateway-demo"] = "emulator"
    return response


def _deployment_for(ctx: CallContext, entry: ModelEntry, capability: str):
    """The best route (routing order, the key's regions) whose deployment can serve `capability`."""
    from . import routing

    flag = {"chat": "supports_chat", "embeddings": "supports_embeddings", "rerank": "supports_rerank"}[capability]
    regions = ctx.principal.allowed_regions
    for d in routing.candidates(entry, allowed_regions=regions):
        if getattr(d, flag):
            return d
    if regions:
        raise GatewayError(403, f"No deployment of '{entry.name}' is in a region your API key may use.",
                           type="permission_error", code="region_not_allowed", param="model")
    return entry.deployments[0]


async def _one_deployment_call(request: ApiRequest, endpoint: str, *, max_bytes: int, parse, capability: str,
                               service, admit: bool = True) -> ApiResponse:
    """An endpoint served by one deployment chosen up front: size check, parse, route, call.

    `admit=False`: the service reserves on the limits itself, once it knows the output length.
    """

    async def work(ctx: CallContext) -> ApiResponse:
        _check_size(request, max_bytes)
        req = parse(request.body)
        entry = await resolve_model(ctx, req.model, capability)
        ctx.deployment = _deployment_for(ctx, entry, capability)
        return await service(ctx, req, ctx.deployment)

    return await governed(request, endpoint, work, admit=admit)


async def create_embeddings(request: ApiRequest) -> ApiResponse:
    from . import embeddings

    return await _one_deployment_call(request, "embeddings", max_bytes=settings.EMBEDDINGS_MAX_BYTES,
                                      parse=embeddings.parse_embeddings_body, capability="embeddings",
                                      service=embeddings.create_embeddings)


async def create_rerank(request: ApiRequest) -> ApiResponse:
    from . import rerank
    from .schemas import parse_rerank_request

    return await _one_deployment_call(request, "rerank", max_bytes=settings.EMBEDDINGS_MAX_BYTES,
                                      parse=parse_rerank_request, capability="rerank", service=rerank.create_rerank)


async def create_completion(request: ApiRequest) -> ApiResponse:
    from . import completions
    from .schemas import parse_completions_request

    return await _one_deployment_call(request, "completions", max_bytes=settings.CHAT_MAX_BYTES,
                                      parse=parse_completions_request, capability="chat",
                                      service=completions.create_completion, admit=False)
