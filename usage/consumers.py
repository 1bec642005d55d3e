"""Websocket consumers of the live usage feed (usage/dashboards/feed.py publishes to their groups).

Staff follow every key through their admin session (`AuthMiddlewareStack`); a key's page follows that
key with the signed token it embeds, sent as the socket's first message, so neither the key nor the
token appears in a URL or an access log.
"""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .dashboards import feed

AUTH_TIMEOUT_S = 10
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403


class _FeedConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def join(self, group: str) -> None:
        feed.bind_loop(asyncio.get_running_loop(), replace=False)
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)
        await self.send_json({"type": "ready"})

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def usage_events(self, message):
        await self.send_json({"type": "events", "events": await self.describe(message["events"])})

    async def describe(self, events: list[dict]) -> list[dict]:
        return events


class StaffFeedConsumer(_FeedConsumer):
    """Every finished request, for the staff dashboard."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()
        await self.join(feed.ALL_GROUP)

    async def receive_json(self, content, **kwargs):
        pass  # nothing to ask: the staff feed is push only

    async def describe(self, events: list[dict]) -> list[dict]:
        names = await key_names({e["key_id"] for e in events if e.get("key_id") is not None})
        return [{**e, "key_name": names.get(e.get("key_id"), "")} for e in events]


class KeyFeedConsumer(_FeedConsumer):
    """One key's finished requests, for its page; authorised by the page's signed token."""

    async def connect(self):
        await self.accept()
        self._deadline = asyncio.get_running_loop().call_later(AUTH_TIMEOUT_S, self._too_slow)

    def _too_slow(self):
        if self.group is None:
            asyncio.ensure_future(self.close(code=CLOSE_UNAUTHORIZED))

    async def receive_json(self, content, **kwargs):
        if self.group is not None:
            return
        key_id = feed.key_from_token(content.get("token", "") if isinstance(content, dict) else "")
        if key_id is None or not await key_is_active(key_id):
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self._deadline.cancel()
        await self.join(feed.key_group(key_id))

    async def disconnect(self, code):
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
        await super().disconnect(code)


_names: dict[int, str] = {}


@database_sync_to_async
def key_names(ids: set[int]) -> dict[int, str]:
    from .models import ApiKey

    missing = [i for i in ids if i not in _names]
    if missing:
        if len(_names) > 50_000:
            _names.clear()
        _names.update(ApiKey.objects.filter(pk__in=missing).values_list("pk", "name"))
    return {i: _names.get(i, f"key #{i}") for i in ids}


@database_sync_to_async
def key_is_active(key_id: int) -> bool:
    from .models import ApiKey

    return ApiKey.objects.active().filter(pk=key_id).exists()
