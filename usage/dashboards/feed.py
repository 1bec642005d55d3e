"""The live feed: finished requests pushed to open dashboards over a Channels websocket.

The usage recorder calls `publish()` once per written batch (usage/recorder.py), never on the request
path. Messages go to the group `usage.all` (staff dashboard) and `usage.key.<id>` (that key's page)
through the channel layer: Redis when `REDIS_URL` is set, so every worker's traffic reaches every
socket; in memory otherwise, which only reaches sockets of the same process. So with several workers
and no Redis the pages poll a JSON endpoint instead (`live_mode()`), rather than silently showing one
worker's share of the traffic.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from django.conf import settings
from django.core import signing

log = logging.getLogger("gateway.dashboards")

ALL_GROUP = "usage.all"
TOKEN_SALT = "usage.dashboards.feed"
TOKEN_MAX_AGE = 12 * 3600
EVENT_FIELDS = ("request_id", "created_at", "key_id", "team_id", "endpoint", "public_model", "region", "status",
                "error_type", "streamed", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd",
                "latency_ms", "ttft_ms")

_loop: asyncio.AbstractEventLoop | None = None
_pending: set[asyncio.Future] = set()


def key_group(key_id: int) -> str:
    return f"usage.key.{key_id}"


def live_mode() -> str:
    """"websocket" when every worker's events reach every socket, "poll" otherwise."""
    if settings.REDIS_URL or settings.WORKERS <= 1:
        return "websocket"
    return "poll"


# --- tokens: a key's page may follow that key's feed ------------------------------------------------------


def feed_token(key_id: int) -> str:
    """A signed, expiring token for one key's feed. Embedded in the page; never the key itself."""
    return signing.dumps({"k": key_id}, salt=TOKEN_SALT, compress=True)


def key_from_token(token: str, max_age: int = TOKEN_MAX_AGE) -> int | None:
    try:
        data = signing.loads(token or "", salt=TOKEN_SALT, max_age=max_age)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    key_id = data.get("k") if isinstance(data, dict) else None
    return key_id if isinstance(key_id, int) else None


# --- publishing -------------------------------------------------------------------------------------------


def event_payload(e) -> dict:
    """What a browser receives of a usage event or record (no client IP, user agent nor metadata)."""
    out = {name: getattr(e, name, None) for name in EVENT_FIELDS}
    out["key_id"] = getattr(e, "key_id", None)
    out["team_id"] = getattr(e, "team_id", None)
    out["cost_usd"] = str(out["cost_usd"] if out["cost_usd"] is not None else "0")
    created = out["created_at"]
    out["created_at"] = created.isoformat() if created is not None else None
    return out


def bind_loop(loop: asyncio.AbstractEventLoop, *, replace: bool = True) -> None:
    """The event loop of this process's server: group sends from flusher threads are scheduled on it.

    The recorder binds it when it starts; a socket binds its loop only if none is running yet (a server
    without lifespan events starts the recorder at its first HTTP request).
    """
    global _loop
    if replace or _loop is None or _loop.is_closed() or not _loop.is_running():
        _loop = loop


async def _send(messages: dict[str, list[dict]]) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    for group, events in messages.items():
        try:
            await layer.group_send(group, {"type": "usage.events", "events": events})
        except Exception as exc:  # a dashboard must never break usage writing
            log.warning("live feed: could not publish to %s: %s", group, exc)
            return


def publish(events) -> None:
    """Announce written usage events to live dashboards. Returns at once; safe from any thread."""
    if not events:
        return
    messages: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        payload = event_payload(e)
        messages[ALL_GROUP].append(payload)
        if payload["key_id"] is not None:
            messages[key_group(payload["key_id"])].append(payload)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        task = running.create_task(_send(dict(messages)))
    elif _loop is not None and _loop.is_running():
        task = asyncio.run_coroutine_threadsafe(_send(dict(messages)), _loop)
    else:
        return  # no server loop in this process (a management command): nobody to tell
    _pending.add(task)
    task.add_done_callback(_pending.discard)
