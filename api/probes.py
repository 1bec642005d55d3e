"""Probes: one tiny request to a deployment, through the gateway's own upstream call path.

`manage.py probe_deployments` and the Deployment admin's "Probe selected deployments" use these. A chat
deployment gets one user message "ping" with max_tokens 1, an embedding deployment one input to embed, a
rerank deployment one document to rank; each is translated, signed and sent exactly as a client's call
would be (api/formats.py, api/chat.py, api/embeddings.py, api/upstream/client.py), and its answer is
translated back, so a probe that passes means the whole path works for that deployment.

Probes act for no API key: they create no usage record, take nothing from any key's limits or budget,
and leave the circuit breakers alone (an operator's one-token check is no evidence that a deployment
can carry traffic again). OCI does bill their few tokens. Each probe is logged with its opc-request-id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass

import aiohttp
import orjson

from models_registry.catalog import DeploymentSpec

from . import formats
from .errors import GatewayError
from .translate.errors import upstream_connection_error, upstream_error_to_gateway, upstream_timeout
from .upstream import client

log = logging.getLogger("gateway.probes")

PROBE_TIMEOUT_S = 30.0
_CHAT_BODY = orjson.dumps({"model": "probe", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})


@dataclass(frozen=True)
class ProbeResult:
    deployment: str
    kind: str
    region: str
    call: str  # chat | embeddings | rerank | none
    ok: bool
    status: int | None  # the upstream HTTP status; None when no answer came (timeout, connection, credentials)
    latency_ms: int
    error: str = ""
    request_id: str = ""  # the opc-request-id sent, to find the call in OCI's logs

    def as_dict(self) -> dict:
        return asdict(self)


def call_kind(d: DeploymentSpec) -> str:
    """What a probe of `d` sends: chat first, since a deployment that chats is mostly used for that."""
    if d.supports_chat:
        return "chat"
    if d.supports_embeddings:
        return "embeddings"
    if d.supports_rerank:
        return "rerank"
    return "none"


class _UpstreamFailed(Exception):
    """An upstream error answer: its HTTP status, and the message a client would have been given."""

    def __init__(self, status: int, error: GatewayError) -> None:
        super().__init__(error.message)
        self.status, self.error = status, error


async def _post_json(d: DeploymentSpec, url: str, body: bytes, request_id: str,
                     extra_headers: dict[str, str] | None = None) -> tuple[int, dict]:
    resp = await client.post_signed(d, url, body, request_id=request_id, stream=False, extra_headers=extra_headers,
                                    connect_timeout=d.connect_timeout_s)
    try:
        raw = await resp.read()
    finally:
        resp.release()
    if resp.status >= 400:
        raise _UpstreamFailed(resp.status, upstream_error_to_gateway(
            resp.status, raw, profile=d.credential.name, deployment=d.name, region=d.region,
            compartment=d.compartment_id, retry_after=resp.headers.get("retry-after"), provider=d.is_provider))
    result = orjson.loads(raw)
    if not isinstance(result, dict):
        raise ValueError("the answer is not a JSON object")
    return resp.status, result


async def _chat(d: DeploymentSpec, request_id: str) -> int:
    from . import chat
    from .schemas import parse_chat_request

    fmt = formats.for_deployment(d)
    translated = fmt.request(parse_chat_request(_CHAT_BODY), formats.chat_options(d))
    body = chat.upstream_body(d, fmt.with_stream(translated.chat_request, False))
    url, extra = chat.chat_url(d, False)
    status, result = await _post_json(d, url, body, request_id, extra)
    # Translate the answer back as a client's call would: a body the gateway cannot read fails the probe.
    fmt.response(result, model="probe", completion_id="chatcmpl-probe", created=int(time.time()),
                 turn=translated.turn)
    return status


async def _embeddings(d: DeploymentSpec, request_id: str) -> int:
    from .translate import embeddings as tr

    if d.is_provider:
        body = orjson.dumps({"model": d.model_id, "input": ["ping"]})
        status, result = await _post_json(d, client.provider_url(d, "embeddings"), body, request_id)
        if not result.get("data"):
            raise ValueError("no embedding in the answer")
        return status
    if d.api_format == "OPENAI":
        raise GatewayError(400, "the gateway does not embed through OpenAI-format deployments")
    (call,) = tr.plan_calls(tr.parse_input("ping"), serving_mode=d.serving_mode(), compartment_id=d.compartment_id,
                            truncate=tr.normalize_truncate(None, d.embed_truncate), input_type=None, dimensions=None)
    status, result = await _post_json(d, f"{d.base_url}/20231130/actions/embedText", orjson.dumps(call.body),
                                      request_id)
    tr.vectors_of(result, 1)
    return status


async def _rerank(d: DeploymentSpec, request_id: str) -> int:
    from .translate import rerank as tr

    if d.api_format == "OPENAI":
        raise GatewayError(400, "the gateway does not rerank through OpenAI-format deployments")
    body = tr.rerank_request_to_oci(query="ping", documents=["pong"], top_n=None, extras={},
                                    serving_mode=d.serving_mode(), compartment_id=d.compartment_id)
    status, result = await _post_json(d, f"{d.base_url}/20231130/actions/rerankText", orjson.dumps(body),
                                      request_id)
    tr.rerank_result_to_openai(result, documents=["pong"], return_documents=False, model="probe",
                               response_id="rerank-probe", usage=None)
    return status


_CALLS = {"chat": _chat, "embeddings": _embeddings, "rerank": _rerank}


async def probe_deployment(d: DeploymentSpec, *, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Send one tiny request to `d`; never raises for an upstream failure, it is in the result."""
    kind = call_kind(d)
    request_id = client.new_request_id()
    started = time.perf_counter()

    def result(ok: bool, status: int | None, error: str = "") -> ProbeResult:
        latency = int((time.perf_counter() - started) * 1000)
        log.info("probe of %s (%s, %s): %s in %d ms, opc-request-id %s", d.name, kind, d.region,
                 "ok" if ok else f"failed: {error}", latency, request_id)
        return ProbeResult(d.name, d.kind, d.region, kind, ok, status, latency, error, request_id)

    if kind == "none":
        return result(False, None, "the deployment supports neither chat, embeddings nor rerank")
    try:
        status = await asyncio.wait_for(_CALLS[kind](d, request_id), timeout=timeout)
    except _UpstreamFailed as failure:
        return result(False, failure.status, failure.error.message)
    except GatewayError as error:  # unusable credentials, or nothing this gateway can send there
        return result(False, None, error.message)
    except (TimeoutError, aiohttp.ServerTimeoutError):
        return result(False, None, upstream_timeout(timeout).message)
    except aiohttp.ClientError as exc:
        return result(False, None, upstream_connection_error(f"{type(exc).__name__}: {exc}").message)
    except (ValueError, KeyError, TypeError) as exc:  # an answer the gateway could not translate
        return result(False, 200, f"unreadable answer: {type(exc).__name__}: {exc}")
    return result(True, status)


async def probe_many(deployments: list[DeploymentSpec], *, timeout: float = PROBE_TIMEOUT_S) -> list[ProbeResult]:
    """Probe every deployment at once; results in the order given."""
    return list(await asyncio.gather(*(probe_deployment(d, timeout=timeout) for d in deployments)))


def probe_many_sync(deployments: list[DeploymentSpec], *, timeout: float = PROBE_TIMEOUT_S) -> list[ProbeResult]:
    """`probe_many` from synchronous code: a management command or an admin view.

    Inside the ASGI server (an admin action runs in a worker thread) the probes run on the serving event
    loop, with the process's pooled upstream session. Anywhere else they get a loop of their own, and the
    session opened for them is closed before it ends.
    """
    from asgiref.sync import SyncToAsync, async_to_sync

    main_loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if main_loop is not None and main_loop.is_running():
        return async_to_sync(probe_many)(deployments, timeout=timeout)
    return asyncio.run(_probe_many_own_loop(deployments, timeout))


async def _probe_many_own_loop(deployments: list[DeploymentSpec], timeout: float) -> list[ProbeResult]:
    loop = asyncio.get_running_loop()
    saved = (client._session, client._session_key)
    try:
        return await probe_many(deployments, timeout=timeout)
    finally:
        # session() made a session bound to this loop, which is about to end: close it, and only it. A
        # serving loop in another thread of this process (the test suite's live server) gets its own back
        # rather than a new pool, and its session is not left to be garbage-collected unclosed.
        key = client._session_key
        if key is not None and key[0] is loop:
            await client.close_session()
            if saved[0] is not None and not saved[0].closed:
                client._session, client._session_key = saved


def deployments_to_probe(*, names: list[str] | None = None, ids: list[int] | None = None) -> list[DeploymentSpec]:
    """Specs for the named (or selected) deployments, enabled or not; without a selection, every enabled one."""
    from models_registry.catalog import deployment_spec
    from models_registry.models import CredentialProfile, Deployment

    default_profile = CredentialProfile.objects.filter(is_default=True).first()
    queryset = Deployment.objects.select_related("credential").order_by("name")
    if names:
        queryset = queryset.filter(name__in=names)
    elif ids:
        queryset = queryset.filter(pk__in=ids)
    else:
        queryset = queryset.filter(enabled=True)
    return [deployment_spec(d, default_profile) for d in queryset]
