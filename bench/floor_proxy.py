"""The Python floor: a deliberately minimal raw-ASGI OpenAI→OCI proxy, for benchmarks only.

parse → translate → sign → forward → translate back, with no auth, no limits, no usage, no Django.
It uses the gateway's own pure translators, so the difference to the gateway is governance and
framework cost, not translation.

    python bench/floor_proxy.py --port 9001 --upstream http://127.0.0.1:9000 --config var/bench/oci/config
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiohttp  # noqa: E402
import oci  # noqa: E402
import orjson  # noqa: E402

from api.schemas import parse_chat_request  # noqa: E402
from api.translate import generic  # noqa: E402
from api.translate.options import ChatOptions  # noqa: E402
from api.translate.sse import DONE, SSEDecoder, encode_sse  # noqa: E402


class _Signable:
    __slots__ = ("method", "url", "path_url", "headers", "body")


def make_app(upstream: str, config_file: str, compartment: str):
    config = oci.config.from_file(config_file)
    signer = oci.signer.Signer(config["tenancy"], config["user"], config["fingerprint"], config["key_file"])
    url = upstream.rstrip("/") + "/20231130/actions/chat"
    path = "/20231130/actions/chat"
    state: dict = {}

    def sign(body: bytes, to: str = url, to_path: str = path) -> dict:
        req = _Signable()
        req.method, req.url, req.path_url, req.body = "POST", to, to_path, body
        req.headers = {
            "content-type": "application/json",
            "content-length": str(len(body)),
            "opc-request-id": uuid.uuid4().hex.upper(),
        }
        signer(req)
        return req.headers

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    state["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await state["session"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        if scope["path"].endswith("/embeddings"):
            return await embeddings(raw, send)
        req = parse_chat_request(raw)
        translated = generic.chat_request_to_oci(req, ChatOptions(model_id=req.model, default_max_tokens=4096))
        body = orjson.dumps(
            {
                "compartmentId": compartment,
                "servingMode": {"servingType": "ON_DEMAND", "modelId": req.model},
                "chatRequest": translated.chat_request,
            }
        )
        created = int(time.time())
        async with state["session"].post(url, data=body, headers=sign(body)) as resp:
            if not req.stream:
                result = orjson.loads(await resp.read())
                out = orjson.dumps(
                    generic.chat_result_to_openai(result, model=req.model, completion_id="chatcmpl-x", created=created)
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": resp.status,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": out})
                return
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            translator = generic.GenericStreamTranslator(req.model, "chatcmpl-x", created)
            decoder = SSEDecoder()
            async for data in resp.content.iter_any():
                for payload in decoder.feed(data):
                    if payload == "[DONE]":
                        continue
                    for chunk in translator.feed(orjson.loads(payload)):
                        await send({"type": "http.response.body", "body": encode_sse(chunk), "more_body": True})
            if translator.usage:
                await send(
                    {"type": "http.response.body", "body": encode_sse(translator.usage_chunk()), "more_body": True}
                )
            await send({"type": "http.response.body", "body": DONE})

    embed_url = upstream.rstrip("/") + "/20231130/actions/embedText"

    async def embeddings(raw: bytes, send) -> None:
        req = orjson.loads(raw)
        body = orjson.dumps(
            {
                "compartmentId": compartment,
                "servingMode": {"servingType": "ON_DEMAND", "modelId": req["model"]},
                "inputs": req["input"],
                "truncate": "END",
            }
        )
        headers = sign(body, embed_url, "/20231130/actions/embedText")
        async with state["session"].post(embed_url, data=body, headers=headers) as resp:
            result = orjson.loads(await resp.read())
        usage = (result.get("usage") or {}).get("promptTokens", 0)
        out = orjson.dumps(
            {
                "object": "list",
                "model": req["model"],
                "data": [
                    {"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(result["embeddings"])
                ],
                "usage": {"prompt_tokens": usage, "total_tokens": usage},
            }
        )
        await send(
            {"type": "http.response.start", "status": resp.status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": out})

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--compartment", required=True)
    args = parser.parse_args()
    app = make_app(args.upstream, args.config, args.compartment)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
