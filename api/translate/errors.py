"""Upstream (OCI) failures as the errors the client sees.

| upstream                               | client                                                          |
|----------------------------------------|-----------------------------------------------------------------|
| 400 and other client errors            | 400 invalid_request_error, OCI's message unwrapped, param named |
| 401 NotAuthenticated                   | 502 upstream_auth_error naming the credential profile           |
| 403, 404 NotAuthorizedOrNotFound       | 502 upstream_not_authorized naming deployment/region/compartment|
| 429                                    | 429 rate_limit_error with Retry-After                           |
| 500/502/504 (and 409 IncorrectState)   | 502 upstream_unavailable                                        |
| 503                                    | 503 upstream_unavailable                                        |
| connection error / deadline            | 502 upstream_unavailable / 504 timeout (raised by the caller)   |

A bad gateway credential is never passed on as a 401: the client's own key was fine.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from api.errors import GatewayError

DEFAULT_RETRY_AFTER = "1"

# OCI (camelCase) and OpenAI names of request fields, for naming `param` from an upstream message.
_PARAM_NAMES = {
    "maxTokens": "max_tokens",
    "maxCompletionTokens": "max_completion_tokens",
    "topP": "top_p",
    "topK": "top_k",
    "frequencyPenalty": "frequency_penalty",
    "presencePenalty": "presence_penalty",
    "numGenerations": "n",
    "logProbs": "logprobs",
    "logitBias": "logit_bias",
    "toolChoice": "tool_choice",
    "toolsChoice": "tool_choice",
    "isParallelToolCalls": "parallel_tool_calls",
    "responseFormat": "response_format",
    "reasoningEffort": "reasoning_effort",
    "serviceTier": "service_tier",
    "streamOptions": "stream_options",
    "webSearchOptions": "web_search_options",
    "stopSequences": "stop",
    "toolCallId": "messages",
    "toolCalls": "messages",
    "toolResults": "messages",
    "chatHistory": "messages",
    "isStream": "stream",
}
_OPENAI_PARAMS = frozenset(
    {
        "messages", "model", "temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "stop",
        "seed", "n", "tools", "tool_choice", "response_format", "logprobs", "top_logprobs", "logit_bias",
        "frequency_penalty", "presence_penalty", "reasoning_effort", "verbosity", "service_tier",
        "parallel_tool_calls", "stream", "stream_options", "prediction", "metadata", "web_search_options",
    }
) | frozenset(_PARAM_NAMES)  # fmt: skip

_QUOTED = re.compile(r"""['"`]([A-Za-z_][A-Za-z0-9_.\[\]]*)['"`]""")
_NAMED = re.compile(r"\b(?:parameter|field|argument|property)\s*:?\s+([A-Za-z_][A-Za-z0-9_]*)", re.I)
_CONTEXT = re.compile(
    r"context (?:length|window)|too long|too many (?:input )?tokens|maximum (?:context|input|prompt)"
    r"|exceeds? (?:the )?(?:max(?:imum)?|model'?s?|context|token)|input .*(?:too large|exceeds)"
    r"|prompt is too long|max_input_tokens|maximum number of tokens",
    re.I,
)


def _inner_message(value: Any, depth: int = 0) -> str | None:
    """The human text inside an error payload that may nest JSON in strings (`"message": "{...}"`)."""
    if depth > 4 or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                inner = orjson.loads(text)
            except orjson.JSONDecodeError:
                return value
            return _inner_message(inner, depth + 1) or value
        return value
    if isinstance(value, dict):
        # xAI via OCI: {"code": "Client specified an invalid argument", "error": "Invalid request ..."}
        for key in ("error", "message", "detail", "msg"):
            if value.get(key):
                found = _inner_message(value[key], depth + 1)
                if found:
                    return found
        return None
    return str(value)


def _parse(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, code, param) from an OCI `{"code","message"}` or OpenAI `{"error": {...}}` body."""
    text = body.decode("utf-8", "replace").strip() if body else ""
    if not text:
        return None, None, None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text[:2000], None, None
    if not isinstance(data, dict):
        return text[:2000], None, None
    param = None
    code = data.get("code")
    error = data.get("error")
    if isinstance(error, dict):  # OpenAI-style body from passthrough models
        param = error.get("param")
        code = error.get("code") or error.get("type") or code
        message = _inner_message(error)
    else:
        message = _inner_message(data.get("message")) or _inner_message(error) or _inner_message(data)
    return message, (str(code) if code is not None else None), (str(param) if param else None)


def _param_from(message: str) -> str | None:
    for pattern in (_QUOTED, _NAMED):
        for name in pattern.findall(message):
            base = re.split(r"[.\[]", name, maxsplit=1)[0]
            if base in _PARAM_NAMES:
                return _PARAM_NAMES[base]
            if base in _OPENAI_PARAMS:
                return name if name.startswith("messages") else base
    return None


def upstream_error_to_gateway(
    status: int,
    body: bytes,
    *,
    profile: str,
    deployment: str,
    region: str,
    compartment: str,
    retry_after: str | None,
    provider: bool = False,
) -> GatewayError:
    """The error the client gets for an upstream HTTP error response.

    `provider`: the deployment is an OpenAI-compatible provider outside OCI (its own API key, its own
    model names), so the messages name it rather than OCI.
    """
    message, code, param = _parse(body)
    detail = message or f"HTTP {status}"
    if provider:
        error = _provider_error(status, detail, code, deployment)
        if error is not None:
            return error
    if status == 401:
        return GatewayError(
            502,
            f"OCI rejected the gateway's credentials (credential profile '{profile}'): {detail}. "
            "Check that profile's key, fingerprint and clock.",
            type="upstream_auth_error",
            code="upstream_auth_error",
        )
    if status in (403, 404):
        return GatewayError(
            502,
            f"OCI denied access to deployment '{deployment}' (region {region}, compartment {compartment}) "
            f"or could not find it: {detail}. Check the model id or endpoint and the IAM policies.",
            type="upstream_not_authorized",
            code="upstream_not_authorized",
        )
    service = f"The provider of deployment '{deployment}'" if provider else "OCI Generative AI"
    if status == 429:
        return GatewayError(
            429,
            f"{'The provider' if provider else 'OCI'} is throttling deployment '{deployment}': {detail}",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": retry_after or DEFAULT_RETRY_AFTER},
        )
    if status == 503:
        return GatewayError(
            503, f"{service} is unavailable (HTTP 503): {detail}", type="upstream_unavailable",
            code="upstream_unavailable",
        )  # fmt: skip
    if status >= 500 or status == 409:
        return GatewayError(
            502, f"{service} failed (HTTP {status}): {detail}", type="upstream_unavailable",
            code="upstream_unavailable",
        )  # fmt: skip
    # 400 and the other client errors: the request itself was refused.
    if not param and message:
        param = _param_from(message)
    if message and _CONTEXT.search(message):
        code = "context_length_exceeded"
    elif code and (code.isdigit() or code[:1].isupper()):
        code = None  # OCI's "400" / "InvalidParameter" codes mean nothing to OpenAI clients
    return GatewayError(400, detail, type="invalid_request_error", code=code, param=param)


def _provider_error(status: int, detail: str, code: str | None, deployment: str) -> GatewayError | None:
    if status == 401:
        return GatewayError(
            502,
            f"The provider of deployment '{deployment}' rejected the gateway's API key: {detail}. Check the "
            "deployment's API key (admin) or the environment variable it names.",
            type="upstream_auth_error",
            code="upstream_auth_error",
        )
    if status == 404 and code in ("model_not_found", "DeploymentNotFound"):
        # A namespace wildcard passed a name its provider does not serve: the client's model is unknown.
        return GatewayError(404, f"The provider of deployment '{deployment}' does not serve this model: {detail}",
                            type="invalid_request_error", code="model_not_found", param="model")
    if status in (403, 404):
        return GatewayError(
            502,
            f"The provider of deployment '{deployment}' refused access or found nothing at its URL: {detail}. "
            "Check the deployment's base URL, API version and model name.",
            type="upstream_not_authorized",
            code="upstream_not_authorized",
        )
    return None


def upstream_connection_error(detail: str) -> GatewayError:
    """The upstream could not be reached (DNS, refused, reset, TLS)."""
    return GatewayError(
        502,
        f"Could not reach OCI Generative AI: {detail}",
        type="upstream_unavailable",
        code="upstream_connection_error",
    )


def upstream_timeout(seconds: float) -> GatewayError:
    """The upstream call exceeded its deadline."""
    return GatewayError(
        504, f"OCI Generative AI did not answer within {seconds:g} s", type="timeout", code="timeout"
    )
