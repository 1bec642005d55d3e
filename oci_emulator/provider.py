"""A non-OCI OpenAI-compatible provider served beside OCI, for the gateway's `openai_compatible` deployments.

Two URL forms, both with OpenAI bodies and error envelopes:

* ``/provider/v1/chat/completions``, ``/provider/v1/embeddings``, ``GET /provider/v1/models`` — a vLLM or
  another gateway: ``Authorization: Bearer <key>``, the model named in the body;
* ``/openai/deployments/<name>/chat/completions?api-version=…`` and ``…/embeddings`` — Azure OpenAI:
  an ``api-key`` header, the model named by the deployment in the path, ``api-version`` required.

The keys are the emulator's GenAI API keys. Models are the ``provider_models`` setting.
"""

from __future__ import annotations

import time

from .errors import ApiError
from .generate import count_tokens, embed_text
from .inference import Ctx, Result
from .openai_compat import completion, parse_openai

EMBED_DIM = 256
AZURE_DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                "valid key for an active subscription and use a correct regional API endpoint for your resource.")


def _model_not_found(model, azure: bool) -> ApiError:
    if azure:
        return ApiError(404, "DeploymentNotFound", "The API deployment for this resource does not exist. If you "
                        "created the deployment within the last 5 minutes, please wait a moment and try again.",
                        openai=True)
    return ApiError(404, "model_not_found", f"The model `{model}` does not exist.", openai=True, param="model")


def _check_model(model, ctx: Ctx, azure: bool, embeddings: bool) -> str:
    if not isinstance(model, str) or model not in ctx.settings["provider_models"]:
        raise _model_not_found(model, azure)
    if model.startswith("text-embedding") != embeddings:
        kind = "embeddings" if embeddings else "chat completions"
        raise ApiError(400, "OperationNotSupported", f"The model {model} does not support {kind}.", openai=True)
    return model


def _model_of(body, ctx: Ctx, deployment: str | None, *, embeddings: bool) -> str:
    """The served model a request names: Azure's path segment, or the body's `model` on /provider/v1."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request_error", "request body must be a JSON object", openai=True)
    named = deployment if deployment is not None else body.get("model")
    return _check_model(named, ctx, deployment is not None, embeddings=embeddings)


def handle_chat(body, ctx: Ctx, deployment: str | None) -> Result:
    """Chat completions; ``deployment`` is Azure's path segment (None for the /provider/v1 form)."""
    model = _model_of(body, ctx, deployment, embeddings=False)
    req, stream, include_usage = parse_openai(body, model, False)
    result = completion(req, model, stream, include_usage, ctx.request_id)
    result.api_format = "AZURE" if deployment is not None else "PROVIDER"
    return result


def handle_embeddings(body, ctx: Ctx, deployment: str | None) -> Result:
    model = _model_of(body, ctx, deployment, embeddings=True)
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
        raise ApiError(400, "invalid_request_error", "'input' must be a non-empty string or array of strings.",
                       openai=True, param="input")
    dim = body.get("dimensions") or EMBED_DIM
    prompt = sum(count_tokens(t) for t in inputs)
    data = [{"object": "embedding", "index": i, "embedding": list(embed_text(model, t, dim))}
            for i, t in enumerate(inputs)]
    usage = {"prompt_tokens": prompt, "total_tokens": prompt}
    result = Result(model=model, api_format="AZURE" if deployment is not None else "PROVIDER", openai=True)
    result.body = {"object": "list", "data": data, "model": model, "usage": usage}
    result.usage = {"promptTokens": prompt, "totalTokens": prompt}
    return result


def list_models(ctx: Ctx) -> dict:
    now = int(time.time())
    return {"object": "list", "data": [{"id": m, "object": "model", "created": now, "owned_by": "provider"}
                                       for m in ctx.settings["provider_models"]]}


def authenticate(route_name: str, headers: dict, api_keys: set) -> None:
    """Bearer key on /provider/v1, ``api-key`` header on the Azure form; OpenAI-style 401 otherwise."""
    if route_name == "azure":
        if headers.get("api-key", "") not in api_keys:
            raise ApiError(401, "401", AZURE_DENIED, openai=True)
        return
    auth = headers.get("authorization", "")
    if not (auth.startswith("Bearer ") and auth[7:].strip() in api_keys):
        raise ApiError(401, "invalid_api_key", "Incorrect API key provided.", openai=True)
