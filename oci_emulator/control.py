"""Control plane: ListModels, GetModel, ListEndpoints, GetEndpoint (``/20231130/...``) and the
OpenAI-style ``GET /openai/v1/models``."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

from .errors import ApiError, not_found
from .inference import Ctx

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MODEL_SORT = {"displayName": "displayName", "lifecycleState": "lifecycleState", "timeCreated": "timeCreated"}


def _missing(name: str) -> ApiError:
    return ApiError(400, "MissingParameter", f"Missing required parameter '{name}'.")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "InvalidParameter", message)


def _page(items: list[dict], q: dict) -> tuple[list[dict], str | None]:
    try:
        limit = int(q.get("limit", [DEFAULT_LIMIT])[0])
    except ValueError:
        raise _invalid("limit must be an integer.") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _invalid(f"limit must be between 1 and {MAX_LIMIT}.")
    start = 0
    if q.get("page"):
        try:
            start = int(base64.urlsafe_b64decode(q["page"][0].encode()).decode().split(":", 1)[1])
        except Exception:
            raise _invalid("Invalid page token.") from None
    chunk = items[start: start + limit]
    nxt = None
    if start + limit < len(items):
        nxt = base64.urlsafe_b64encode(f"offset:{start + limit}".encode()).decode()
    return chunk, nxt


def _compartment(q: dict, ctx: Ctx) -> str:
    if not q.get("compartmentId"):
        raise _missing("compartmentId")
    comp = q["compartmentId"][0]
    if comp not in ctx.settings["compartments"]:
        raise not_found(ctx.settings)
    return comp


def _sorted(items: list[dict], q: dict) -> list[dict]:
    sort_by = q.get("sortBy", [None])[0]
    order = q.get("sortOrder", [None])[0]
    if order not in (None, "ASC", "DESC"):
        raise _invalid("sortOrder must be ASC or DESC.")
    if sort_by is None:
        return items[::-1] if order == "ASC" else items
    if sort_by not in MODEL_SORT:
        raise _invalid(f"sortBy must be one of {sorted(MODEL_SORT)}.")
    default_desc = sort_by == "timeCreated"
    desc = order == "DESC" or (order is None and default_desc)
    return sorted(items, key=lambda s: (s.get(sort_by) or ""), reverse=desc)


def _clean(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def list_models(query: str, ctx: Ctx) -> tuple[dict, list]:
    q = parse_qs(query, keep_blank_values=False)
    _compartment(q, ctx)
    items = ctx.catalog.summaries
    caps = set(q.get("capability", ()))
    if caps:
        items = [s for s in items if caps & set(s["capabilities"])]
    for key in ("vendor", "displayName", "id", "lifecycleState"):
        if q.get(key):
            items = [s for s in items if s.get(key) == q[key][0]]
    items = _sorted(items, q)
    chunk, nxt = _page(items, q)
    headers = [(b"opc-next-page", nxt.encode())] if nxt else []
    return {"items": [_clean(s) for s in chunk]}, headers


def get_model(model_id: str, ctx: Ctx) -> dict:
    body = ctx.catalog.model_resource(model_id)
    if body is None:
        raise not_found(ctx.settings)
    return _clean(body)


def list_endpoints(query: str, ctx: Ctx) -> tuple[dict, list]:
    q = parse_qs(query)
    comp = _compartment(q, ctx)
    items = [ctx.catalog.endpoint_summary(e) for e in ctx.catalog.endpoints if e.compartment_id == comp]
    for key in ("displayName", "id", "lifecycleState"):
        if q.get(key):
            items = [s for s in items if s.get(key) == q[key][0]]
    items = _sorted(items, q)
    chunk, nxt = _page(items, q)
    headers = [(b"opc-next-page", nxt.encode())] if nxt else []
    return {"items": [_clean(s) for s in chunk]}, headers


def get_endpoint(endpoint_id: str, ctx: Ctx) -> dict:
    ep = ctx.catalog.endpoints_by_id.get(endpoint_id)
    if ep is None:
        raise not_found(ctx.settings)
    body = ctx.catalog.endpoint_summary(ep)
    body["previousState"] = None
    return _clean(body)


def openai_models(ctx: Ctx) -> dict:
    data = [{"id": m.name, "object": "model", "created": 1736935200, "owned_by": m.vendor}
            for m in ctx.catalog.models if m.openai_compatible]
    return {"object": "list", "data": data}
