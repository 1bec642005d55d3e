"""Per-process background work: the invalidation-bus listener and the usage flusher.

Started by the ASGI lifespan (uvicorn) or, under servers without lifespan, on the first request.
Stopped on shutdown, which also writes every queued usage record.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("gateway.background")

_started = False


def ensure_started() -> None:
    global _started
    if _started:
        return
    _started = True
    from models_registry.bus import listener
    from usage.recorder import recorder

    listener.start()
    recorder.start()
    from . import gc_tuning

    gc_tuning.tune()


async def shutdown() -> None:
    global _started
    from api.upstream.client import close_session
    from models_registry.bus import listener
    from usage.recorder import recorder

    await recorder.stop()
    await listener.stop()
    await close_session()
    _started = False


async def lifespan(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                ensure_started()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await asyncio.wait_for(shutdown(), timeout=30)
            except Exception as exc:
                log.error("shutdown did not complete cleanly: %s", exc)
            await send({"type": "lifespan.shutdown.complete"})
            return
