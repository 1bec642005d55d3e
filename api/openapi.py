"""The OpenAPI 3.1 description of the `/v1` surface, generated from the request models."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from pydantic.json_schema import models_json_schema

from .schemas import ChatCompletionRequest, CompletionsRequest, EmbeddingsRequest, RerankRequest

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_ERRORS = {
    str(status): {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for status, text in (
        (400, "Invalid request: the message names the parameter"),
        (401, "Missing or invalid API key"),
        (403, "The key may not use this model"),
        (404, "Model not in the registry"),
        (413, "Body over the endpoint's size limit"),
        (429, "Rate limit or budget exceeded, or OCI throttled"),
        (502, "OCI failed or refused the gateway's credentials"),
        (503, "OCI unavailable"),
        (504, "OCI did not answer in time"),
    )
}


def _post(summary: str, schema: str, streams: bool) -> dict:
    ok = {"application/json": {"schema": {"type": "object"}}}
    if streams:
        ok["text/event-stream"] = {"schema": {"type": "string", "description": "SSE chunks, then data: [DONE]"}}
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
            },
            "responses": {"200": {"description": "OK", "content": ok}, **_ERRORS},
        }
    }


def _get(summary: str, parameters: list | None = None) -> dict:
    return {
        "get": {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": parameters or [],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                **_ERRORS,
            },
        }
    }


@lru_cache(maxsize=1)
def openapi_document() -> dict:
    models = [(m, "validation") for m in (ChatCompletionRequest, CompletionsRequest, EmbeddingsRequest, RerankRequest)]
    _keys, schemas = models_json_schema(models, ref_template="#/components/schemas/{model}")
    components = dict(schemas.get("$defs", {}))
    components["Error"] = _ERROR
    prefix = settings.API_ROUTE_PREFIX.rstrip("/")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OCI GenAI gateway: OpenAI-compatible API",
            "version": "1",
            "description": "OpenAI's API in front of Oracle Cloud Generative AI. Authenticate with "
            "`Authorization: Bearer <key>` (or `api-key` / `x-api-key`).",
        },
        "servers": [{"url": prefix or "/"}],
        "components": {"schemas": components, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/chat/completions": _post("Create a chat completion", "ChatCompletionRequest", True),
            "/completions": _post("Create a (legacy) completion", "CompletionsRequest", True),
            "/embeddings": _post("Create embeddings", "EmbeddingsRequest", False),
            "/rerank": _post("Rerank documents for a query", "RerankRequest", False),
            "/models": _get("List the models your key may use"),
            "/models/{model}": _get(
                "Retrieve a model", [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}]
            ),
            "/usage": _get(
                "Your key's own usage",
                [
                    {"name": "start", "in": "query", "schema": {"type": "string"}},
                    {"name": "end", "in": "query", "schema": {"type": "string"}},
                ],
            ),
        },
    }
