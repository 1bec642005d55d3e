"""The one pooled async HTTP client of a worker process, and signed calls to OCI through it.

aiohttp rather than httpx: under concurrency one long-lived `aiohttp.ClientSession` used a fraction
of httpx's CPU in our measurements (docs/benchmarks.md). Proxies come from HTTPS_PROXY / HTTP_PROXY /
NO_PROXY (`trust_env`), a private CA from OCI_GENAI_CA_BUNDLE.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
import urllib.request
from collections.abc import Awaitable
from urllib.parse import quote, urlsplit

import aiohttp
from django.conf import settings

from models_registry.catalog import DeploymentSpec

from ..errors import GatewayError
from .signing import signed_headers

# GATEWAY_TRACE_UPSTREAM=1: heads and SSE events of upstream calls (secrets redacted by the log filter).
trace = logging.getLogger("gateway.upstream.trace")

_session: aiohttp.ClientSession | None = None
_session_key: tuple | None = None


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.OCI_GENAI_CA_BUNDLE:
        context.load_verify_locations(settings.OCI_GENAI_CA_BUNDLE)
    return context


def session() -> aiohttp.ClientSession:
    """The process's session, created lazily inside the running loop."""
    global _session, _session_key
    key = (asyncio.get_running_loop(), settings.OCI_GENAI_CA_BUNDLE)
    if _session is None or _session.closed or _session_key != key:
        if _session is not None and not _session.closed and _session_key and _session_key[0] is key[0]:
            _background_close(_session)  # the CA bundle changed: do not leak the old pool
        connector = aiohttp.TCPConnector(
            limit=settings.UPSTREAM_POOL_SIZE,
            ssl=_ssl_context(),
            ttl_dns_cache=300,
            enable_cleanup_closed=True,
        )
        _session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,  # proxies are resolved by proxy_for(): aiohttp's own lookup costs a thread hop per call
            timeout=aiohttp.ClientTimeout(
                total=None, connect=settings.UPSTREAM_CONNECT_TIMEOUT, sock_read=settings.UPSTREAM_READ_TIMEOUT
            ),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )
        _session_key = key
    return _session


_closing: set[asyncio.Task] = set()


def _background_close(old: aiohttp.ClientSession) -> None:
    task = asyncio.get_running_loop().create_task(old.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def close_session() -> None:
    global _session
    if _session is not None and not _session.closed:
        await _session.close()
    _session = None


# The variables the answer depends on: urllib reads every *_proxy variable, but only these decide an http(s) URL.
_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "REQUEST_METHOD")
_proxy_answers: tuple[tuple, dict[str, str | None]] = ((), {})


def proxy_for(url: str) -> str | None:
    """The proxy for `url` from HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read on each call (cheap, no thread).

    urllib scans and decodes the whole environment per call (about 4% of a request's CPU): the answer is
    kept per URL for as long as the proxy variables keep their values, so a change still applies at once.
    """
    global _proxy_answers
    env = tuple(map(os.environ.get, _PROXY_VARS))
    seen, answers = _proxy_answers
    if env != seen or len(answers) > 1000:
        answers = {}
        _proxy_answers = (env, answers)
    try:
        return answers[url]
    except KeyError:
        pass
    proxy = None
    proxies = urllib.request.getproxies_environment()
    if proxies:
        parts = urlsplit(url)
        proxy = proxies.get(parts.scheme)
        if proxy and urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
            proxy = None
    answers[url] = proxy
    return proxy


def new_request_id() -> str:
    """32 upper-case hex characters, the shape the OCI SDK uses for opc-request-id.

    An identifier, not a secret: `random` (reseeded in forked children) spares the uuid4() object and its
    urandom syscall on every request.
    """
    return f"{random.getrandbits(128):032X}"


async def post_signed(
    deployment: DeploymentSpec,
    url: str,
    body: bytes,
    *,
    request_id: str,
    stream: bool,
    extra_headers: dict[str, str] | None = None,
    connect_timeout: float | None = None,
    admission: Awaitable | None = None,
) -> aiohttp.ClientResponse:
    """POST `body` (the exact bytes that are signed) and return the response, unread.

    `admission`: awaited once the request is signed and before it leaves, so that a limiter round trip
    started by the caller runs while this process signs (its error, a 429, stops the call unsent).
    """
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream" if stream else "application/json",
        "opc-request-id": request_id,
        "user-agent": "oci-genai-gateway",
    }
    if extra_headers:
        headers.update(extra_headers)
    if deployment.is_provider:
        headers["x-request-id"] = request_id  # vLLM's and most providers' request-id header
        headers.update(provider_auth_headers(deployment))
    else:
        headers = await signed_headers(deployment.credential, "POST", url, headers, body)
    if admission is not None:
        await admission
    if settings.GATEWAY_TRACE_UPSTREAM:
        trace.info("upstream request POST %s headers=%s body_bytes=%d", url, headers, len(body))
    response = await session().post(url, data=body, headers=headers, allow_redirects=False,
                                    timeout=_timeout(connect_timeout), proxy=proxy_for(url))
    if settings.GATEWAY_TRACE_UPSTREAM:
        trace.info("upstream response %s %s headers=%s", response.status, url, dict(response.headers))
    return response


def provider_url(deployment: DeploymentSpec, operation: str) -> str:
    """`operation` (chat/completions, embeddings) of an OpenAI-compatible provider; Azure's deployment form."""
    if deployment.azure_api_version:
        name = quote(deployment.model_id, safe="")
        return (f"{deployment.base_url}/openai/deployments/{name}/{operation}"
                f"?api-version={quote(deployment.azure_api_version, safe='')}")
    return f"{deployment.base_url}/{operation}"


def provider_auth_headers(deployment: DeploymentSpec) -> dict[str, str]:
    """An OpenAI-compatible provider's key: Azure's `api-key` header, everyone else's bearer token."""
    if deployment.key_problem:
        raise GatewayError(
            502,
            f"The API key of deployment {deployment.name!r} is not usable: {deployment.key_problem}",
            type="upstream_auth_error",
            code="upstream_auth_error",
        )
    if not deployment.api_key:
        return {}  # a provider without authentication (a lab vLLM)
    if deployment.azure_api_version:
        return {"api-key": deployment.api_key}
    return {"authorization": f"Bearer {deployment.api_key}"}


def _timeout(connect: float | None = None) -> aiohttp.ClientTimeout:
    # Per call, so an operator's change (and a test's) applies without a new session. Waiting for the
    # first byte and for stream events is bounded by the caller (per deployment), not by the socket.
    return aiohttp.ClientTimeout(total=None, connect=connect or settings.UPSTREAM_CONNECT_TIMEOUT, sock_read=None)


async def get_signed(credential, url: str, *, request_id: str) -> aiohttp.ClientResponse:
    headers = {"accept": "application/json", "opc-request-id": request_id, "user-agent": "oci-genai-gateway"}
    headers = await signed_headers(credential, "GET", url, headers, b"")
    return await session().get(url, headers=headers, allow_redirects=False, timeout=_timeout(), proxy=proxy_for(url))
