"""The emulator as a raw ASGI application (no framework), served by uvicorn.

One port serves the inference plane, the control plane, OCI's OpenAI-compatible endpoint, Data
Science model deployments and the ``/_emulator/*`` test controls. See README.md for the routes.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
import os
import re
from urllib.parse import parse_qs

import orjson

from . import control, inference, openai_compat, provider, schema
from . import settings as settings_mod
from .catalog import Catalog
from .errors import ApiError, bad_request, not_found, standard
from .faults import Fault, FaultRule, from_directives, merge
from .ledger import Ledger
from .signature import SignatureFailure, Verifier
from .streams import DONE, frame, pad_length

JSON = b"application/json"
SSE = b"text/event-stream"
API = "/20231130"
_AZURE_RE = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)$")
_PREDICT_RE = re.compile(r"^/(ocid1\.datasciencemodeldeployment\.[^/]+)/(predict|predictWithResponseStream)(/.*)?$")


class ConnectionCut(Exception):
    """Raised to make the server drop the connection mid-response (fault ``cut_after``)."""


class _ClientGone(Exception):
    """The client went away before any byte was written (e.g. during a hang)."""


class _QuietCut(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionCut)


logging.getLogger("uvicorn.error").addFilter(_QuietCut())

_ROUTES = {
    ("POST", f"{API}/actions/chat"): ("chat", "ChatDetails"),
    ("POST", f"{API}/actions/embedText"): ("embed", "EmbedTextDetails"),
    ("POST", f"{API}/actions/rerankText"): ("rerank", "RerankTextDetails"),
    ("GET", f"{API}/models"): ("list_models", None),
    ("GET", f"{API}/endpoints"): ("list_endpoints", None),
    ("POST", "/openai/v1/chat/completions"): ("openai", None),
    ("POST", f"{API}/actions/v1/chat/completions"): ("openai", None),
    ("GET", "/openai/v1/models"): ("openai_models", None),
    ("POST", "/provider/v1/chat/completions"): ("provider", None),
    ("POST", "/provider/v1/embeddings"): ("provider", None),
    ("GET", "/provider/v1/models"): ("provider_models", None),
}
_PROVIDER_ROUTES = {"provider", "provider_models", "azure"}
_KNOWN_PATHS = {p for _m, p in _ROUTES}
_HANDLERS = {"chat": inference.handle_chat, "embed": inference.handle_embed, "rerank": inference.handle_rerank}


class EmulatorApp:
    """ASGI callable. ``settings`` overrides :data:`settings.DEFAULTS`; ``api_keys`` are the GenAI API
    keys accepted as ``Authorization: Bearer`` on ``/openai/v1``."""

    def __init__(self, settings: dict | None = None, catalog: Catalog | None = None,
                 verifier: Verifier | None = None, api_keys=()):
        base = settings_mod.defaults()
        settings_mod.update(base, settings or {})
        self.initial_settings = copy.deepcopy(base)
        self.settings = base
        self.catalog = catalog or Catalog()
        self.verifier = verifier or Verifier(max_skew=base["max_clock_skew_s"])
        self.api_keys = set(api_keys)
        self.ledger = Ledger()
        self.rule: FaultRule | None = None
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex().upper()

    # ------------------------------------------------------------------------------------ plumbing
    def _new_id(self) -> str:
        return f"{self._prefix}{next(self._ids):024X}"

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    @staticmethod
    async def _read_body(receive) -> bytes:
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body"):
            return body
        chunks = [body]
        while message.get("more_body"):
            message = await receive()
            chunks.append(message.get("body", b""))
        return b"".join(chunks)

    @staticmethod
    async def _send_json(send, status: int, payload, rid: str | None, extra=()) -> bytes:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        headers = [(b"content-type", JSON), (b"content-length", str(len(data)).encode())]
        if rid:
            headers.append((b"opc-request-id", rid.encode()))
        headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        return data

    # ------------------------------------------------------------------------------------ requests
    async def _http(self, scope, receive, send):
        path = scope["path"]
        method = scope["method"]
        body = await self._read_body(receive)
        if path.startswith("/_emulator/"):
            await self._control(method, path, scope.get("query_string", b"").decode("latin-1"), body, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        client_id = headers.get("opc-request-id")
        rid = f"{client_id or self._new_id()}/{self._new_id()}/{os.urandom(16).hex().upper()}"
        entry = self.ledger.start(method, path, query, client_id, rid)
        try:
            await self._dispatch(method, path, query, headers, body, scope, receive, send, entry, rid)
        except ConnectionCut:
            self.ledger.finish(entry)
            raise
        except _ClientGone:
            pass
        except ApiError as err:
            entry["status"] = err.status
            entry["errorCode"] = err.code
            await self._send_json(send, err.status, err.body(), rid, err.headers)
        except Exception as exc:  # a bug: answer like OCI would, keep the traceback in the log
            logging.getLogger("oci_emulator").exception("internal error")
            entry["status"] = 500
            entry["errorCode"] = "InternalServerError"
            if entry["eventsWritten"] or entry["stream"]:
                raise ConnectionCut() from exc
            await self._send_json(send, 500, standard(500, f"Emulator error: {exc!r}").body(), rid)
        finally:
            self.ledger.finish(entry)

    def _route(self, method: str, path: str):
        route = _ROUTES.get((method, path))
        if route is not None:
            return route + (None,)
        if path.startswith(f"{API}/models/") and path.count("/") == 3:
            return ("get_model", None, path.rsplit("/", 1)[1]) if method == "GET" else ("405", None, None)
        if path.startswith(f"{API}/endpoints/") and path.count("/") == 3:
            return ("get_endpoint", None, path.rsplit("/", 1)[1]) if method == "GET" else ("405", None, None)
        m = _AZURE_RE.match(path)
        if m:
            return ("azure", None, m.groups()) if method == "POST" else ("405", None, None)
        m = _PREDICT_RE.match(path)
        if m:
            return ("predict", None, m.groups()) if method == "POST" else ("405", None, None)
        if path in _KNOWN_PATHS:
            return ("405", None, None)
        return (None, None, None)

    def _authenticate(self, method, target, headers, body, route_name, entry) -> None:
        auth = headers.get("authorization", "")
        if route_name in _PROVIDER_ROUTES:
            try:
                provider.authenticate(route_name, headers, self.api_keys)
            except ApiError:
                entry["signature"] = "bad_api_key"
                raise
            entry["signature"] = "api_key"
            return
        if route_name in ("openai", "openai_models") and auth.startswith("Bearer "):
            if auth[7:].strip() in self.api_keys:
                entry["signature"] = "api_key"
                return
            entry["signature"] = "bad_api_key"
            raise standard(401, "The API key is not valid.")
        if not self.settings["verify_signatures"]:
            entry["signature"] = "disabled"
            return
        try:
            self.verifier.max_skew = self.settings["max_clock_skew_s"]
            self.verifier.verify(method, target, headers, body)
        except SignatureFailure as failure:
            entry["signature"] = failure.verdict
            raise standard(401, f"{standard(401).message} ({failure.detail})") from None
        entry["signature"] = "ok"

    async def _dispatch(self, method, path, query, headers, body, scope, receive, send, entry, rid):
        settings = self.settings
        route_name, root, arg = self._route(method, path)
        if route_name is None:
            raise not_found(settings)
        if route_name == "405":
            raise standard(405)
        raw_path = scope.get("raw_path")
        target = raw_path.decode("latin-1") if raw_path else path
        if query:
            target = f"{target}?{query}"
        self._authenticate(method, target, headers, body, route_name, entry)
        ctx = inference.Ctx(settings=settings, catalog=self.catalog, request_id=rid, headers=headers, path=path)

        if method == "GET":
            fault = self._take_rule(path, None)
            await self._pre_fault(fault, entry, receive, send, rid)
            if route_name == "list_models":
                payload, extra = control.list_models(query, ctx)
            elif route_name == "list_endpoints":
                payload, extra = control.list_endpoints(query, ctx)
            elif route_name == "get_model":
                payload, extra = control.get_model(arg, ctx), []
            elif route_name == "get_endpoint":
                payload, extra = control.get_endpoint(arg, ctx), []
            elif route_name == "provider_models":
                payload, extra = provider.list_models(ctx), []
            else:
                payload, extra = control.openai_models(ctx), []
            entry["status"] = 200
            await self._send_json(send, 200, payload, rid, extra)
            return

        if route_name == "azure" and not parse_qs(query).get("api-version"):
            raise ApiError(404, "404", "Resource not found", openai=True)  # what Azure answers without it
        openai_style = route_name in ("openai", "predict", "provider", "azure")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            if openai_style:
                raise ApiError(400, "invalid_request_error", "Request body is not valid JSON.", openai=True) from None
            raise bad_request(settings, f"{schema.PREFIX} The request body is not valid JSON.") from None
        model_hint = None
        if isinstance(data, dict):
            sm = data.get("servingMode")
            model_hint = (sm.get("modelId") or sm.get("endpointId")) if isinstance(sm, dict) else data.get("model")
            cr = data.get("chatRequest")
            if isinstance(cr, dict) and isinstance(cr.get("apiFormat"), str):
                entry["apiFormat"] = cr["apiFormat"]
        if route_name == "azure":
            model_hint = arg[0]
        entry["model"] = model_hint if isinstance(model_hint, str) else None
        fault = self._take_rule(path, entry["model"])
        if fault.status:
            entry["fault"] = fault.describe()
            await self._pre_fault(fault, entry, receive, send, rid, openai=openai_style)
        if root is not None:
            try:
                schema.validate(data, root)
            except schema.SchemaError as err:
                entry["schema"] = f"error: {err.message}"
                raise bad_request(settings, err.message) from None
            entry["schema"] = "ok"
        if route_name in _HANDLERS:
            result = _HANDLERS[route_name](data, ctx)
        elif route_name == "openai":
            result = openai_compat.handle_oci_openai(data, ctx)
        elif route_name in ("provider", "azure"):
            deployment, operation = arg if route_name == "azure" else (None, path.rsplit("/v1/", 1)[1])
            handler = provider.handle_chat if operation == "chat/completions" else provider.handle_embeddings
            result = handler(data, ctx, deployment)
        else:
            deployment, action, sub = arg
            served = self.catalog.deployments.get(deployment)
            if served is None:
                raise not_found(settings)
            route = sub or headers.get("route")
            stream_route = action == "predictWithResponseStream"
            if stream_route and sub is None and headers.get("enable-streaming", "").lower() == "true" \
                    and isinstance(data, dict):
                data.setdefault("stream", True)
            result = openai_compat.handle_predict(data, ctx, served, stream_route, route)
        entry["model"] = result.model
        entry["apiFormat"] = result.api_format
        fault = merge(fault if fault.active() else None, from_directives(result.directives))
        entry["fault"] = fault.describe()
        await self._pre_fault(fault, entry, receive, send, rid, openai=result.openai)
        if result.events is not None:
            await self._stream(result, fault, entry, receive, send, rid)
        else:
            data_out = orjson.dumps(result.body)
            if fault.cut_after is not None:
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", JSON), (b"content-length", str(len(data_out)).encode()),
                    (b"opc-request-id", rid.encode())]})
                if fault.cut_after:
                    await send({"type": "http.response.body", "body": data_out[: fault.cut_after],
                                "more_body": True})
                entry["status"] = 200
                raise ConnectionCut()
            entry["status"] = 200
            entry["usage"] = result.usage
            await self._send_json(send, 200, data_out, rid)

    # ------------------------------------------------------------------------------------ faults
    def _take_rule(self, path: str, model: str | None) -> Fault:
        rule = self.rule
        if rule is not None and rule.matches(path, model):
            return rule.take()
        return Fault()

    async def _wait_disconnect(self, receive, timeout: float) -> bool:
        try:
            while True:
                message = await asyncio.wait_for(receive(), timeout)
                if message["type"] == "http.disconnect":
                    return True
        except TimeoutError:
            return False

    async def _pre_fault(self, fault: Fault, entry, receive, send, rid, openai: bool = False) -> None:
        """Latency, hang and status faults: everything that happens before the first byte."""
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000.0)
        if fault.hang:
            entry["disconnected"] = await self._wait_disconnect(receive, self.settings["hang_max_s"])
            if entry["disconnected"]:
                entry["status"] = 0
                raise _ClientGone()
            raise standard(504, "Emulated hang reached hang_max_s.")
        if fault.status:
            status = fault.status
            if status == 400:
                err = bad_request(self.settings, f"{schema.PREFIX} (emulated fault)")
            elif status == 404:
                err = not_found(self.settings)
            else:
                err = standard(status)
            retry_after = fault.retry_after or self.settings["retry_after_s"]
            if status == 429 and retry_after:
                err.headers = [(b"retry-after", str(retry_after).encode())]
            if openai:
                err.openai = True
            raise err

    # ------------------------------------------------------------------------------------ streams
    async def _stream(self, result, fault: Fault, entry, receive, send, rid):
        entry["stream"] = True
        entry["status"] = 200
        settings = self.settings
        pad = settings["pad"]
        split = settings["split_writes"]
        per_write = max(1, int(settings["events_per_write"]))
        held: list[bytes] = []  # events waiting to go out together (events_per_write)
        interval = fault.interval_ms / 1000.0
        disconnected = asyncio.Event()

        async def watch():
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.ensure_future(watch())
        billed = 0
        prompt = result.prompt_tokens

        def bill():
            entry["usage"] = {"promptTokens": prompt, "completionTokens": billed, "totalTokens": prompt + billed}

        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", SSE), (b"opc-request-id", rid.encode()), (b"cache-control", b"no-cache")]})
            last = len(result.events) - 1
            for i, (payload, tokens) in enumerate(result.events):
                if fault.cut_after is not None and i >= fault.cut_after:
                    bill()
                    raise ConnectionCut()
                if interval and i:
                    try:
                        await asyncio.wait_for(disconnected.wait(), interval)
                    except TimeoutError:
                        pass
                if disconnected.is_set():
                    break
                data = frame(payload, pad_length(i) if pad and payload is not DONE else None)
                if per_write > 1:
                    held.append(data)
                    if len(held) < per_write and i < last and not (fault.cut_after is not None
                                                                   and i + 1 >= fault.cut_after):
                        entry["eventsWritten"] += 1
                        billed += tokens
                        continue
                    data = b"".join(held)
                    held.clear()
                if split and len(data) > 8:
                    cut = len(data) // 2
                    await send({"type": "http.response.body", "body": data[:cut], "more_body": True})
                    await asyncio.sleep(0)
                    data = data[cut:]
                await send({"type": "http.response.body", "body": data, "more_body": True})
                entry["eventsWritten"] += 1
                billed += tokens
                if disconnected.is_set():
                    entry["eventsAfterDisconnect"] += 1
            else:
                if result.completion_tokens is not None and not disconnected.is_set():
                    billed = result.completion_tokens  # the whole answer, exactly as its usage event says
            if fault.keep_open and not disconnected.is_set():
                try:
                    await asyncio.wait_for(disconnected.wait(), settings["keep_open_max_s"])
                except TimeoutError:
                    pass
            bill()
            entry["disconnected"] = disconnected.is_set()
            if not disconnected.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            entry["disconnected"] = disconnected.is_set()
            watcher.cancel()

    # ------------------------------------------------------------------------------------ /_emulator
    async def _control(self, method, path, query, body, send):
        name = path[len("/_emulator/"):].strip("/")
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            await self._send_json(send, 400, {"code": "InvalidJson", "message": "Body is not JSON."}, None)
            return
        try:
            payload = await self._control_action(method, name, parse_qs(query), data)
        except (ValueError, TypeError, KeyError) as exc:
            await self._send_json(send, 400, {"code": "InvalidParameter", "message": str(exc)}, None)
            return
        if payload is None:
            await self._send_json(send, 404, {"code": "NotFound", "message": f"No control {method} {path}"}, None)
            return
        await self._send_json(send, 200, payload, None)

    async def _control_action(self, method, name, q, data):
        if name == "ledger" and method == "GET":
            since = int(q.get("since", ["0"])[0])
            idle = True
            if q.get("wait", ["0"])[0] not in ("0", "false", ""):
                idle = await self.ledger.wait_idle(float(q.get("timeout", ["5"])[0]))
            return {"seq": self.ledger.seq, "idle": idle, "entries": self.ledger.since(since)}
        if name == "reset" and method == "POST":
            self.ledger.reset()
            self.rule = None
            self.settings.clear()
            self.settings.update(copy.deepcopy(self.initial_settings))
            return {"seq": self.ledger.seq}
        if name == "faults":
            if method == "GET":
                return {"rule": self.rule.as_dict() if self.rule else None}
            if method == "DELETE" or (method == "POST" and not data):
                self.rule = None
                return {"rule": None}
            if method == "POST":
                self.rule = FaultRule(data)
                return {"rule": self.rule.as_dict()}
        if name == "settings":
            if method == "GET":
                return self.settings
            if method == "POST":
                settings_mod.update(self.settings, data)
                return self.settings
        if name == "keys" and method == "POST":
            self.verifier.register(data["keyId"], data["publicKey"])
            return {"registered": data["keyId"]}
        if name == "health" and method == "GET":
            return {"ok": True, "seq": self.ledger.seq}
        if name == "catalog" and method == "GET":
            return {
                "models": [{"name": m.name, "ocid": m.ocid, "apiFormats": list(m.api_formats),
                            "capabilities": list(m.capabilities), "reasoning": m.reasoning, "vision": m.vision,
                            "onDemand": m.on_demand, "openaiCompatible": m.openai_compatible,
                            "embedDims": list(m.embed_dims) or ([m.embed_default_dim] if m.embed_default_dim else [])}
                           for m in self.catalog.models],
                "endpoints": [{"id": e.id, "name": e.name, "model": e.model_name} for e in self.catalog.endpoints],
                "deployments": [{"id": k, "model": v} for k, v in self.catalog.deployments.items()],
                "compartments": self.settings["compartments"],
            }
        return None
