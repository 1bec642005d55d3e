"""One invalidation bus for every in-process cache (the catalog, API keys).

Every write path bumps a version per namespace in the same transaction as the write
(`bump()`); each process keeps the newest versions it has seen and its caches rebuild when the
version they were built from is older. News of a bump travels by Redis pub/sub when `REDIS_URL` is
set, by PostgreSQL `LISTEN/NOTIFY` otherwise, and by polling on SQLite; a periodic re-check of the
version table is the safety net in every case.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction

from .models import CacheVersion

log = logging.getLogger("gateway.bus")

CHANNEL = "gateway_cache"
NAMESPACES = ("catalog", "keys")

# Newest version seen by this process, per namespace. Plain dict reads are atomic in CPython.
_known: dict[str, int] = {}
_lock = threading.Lock()
_subscribers: list[Callable[[str], None]] = []


def bump(namespace: str) -> None:
    """Mark `namespace` changed. Call inside (or as) the transaction that made the change."""
    # A random version, not a counter: a restored or re-created table can never repeat a value a
    # process already holds, which would make it miss the change.
    version = secrets.randbits(62)
    with transaction.atomic():
        if not CacheVersion.objects.filter(namespace=namespace).update(version=version):
            CacheVersion.objects.update_or_create(namespace=namespace, defaults={"version": version})
        if connection.vendor == "postgresql":
            # NOTIFY is transactional: listeners hear it only once the write is committed.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, namespace])
        transaction.on_commit(lambda: _after_commit(namespace))


def _after_commit(namespace: str) -> None:
    refresh_versions()
    if settings.REDIS_URL:
        try:
            _redis_sync().publish(CHANNEL, namespace)
        except Exception as exc:  # the periodic re-check still delivers the change
            log.warning("could not publish cache invalidation to Redis: %s", exc)


_redis_client = None


def _redis_sync():
    global _redis_client
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    return _redis_client


def read_versions() -> dict[str, int]:
    return dict(CacheVersion.objects.values_list("namespace", "version"))


def refresh_versions() -> set[str]:
    """Re-read the version table; return the namespaces that moved."""
    versions = read_versions()
    changed = set()
    with _lock:
        for namespace, version in versions.items():
            if _known.get(namespace) != version:
                _known[namespace] = version
                changed.add(namespace)
    for namespace in changed:
        for callback in list(_subscribers):
            callback(namespace)
    return changed


def known_version(namespace: str) -> int:
    return _known.get(namespace, 0)


def subscribe(callback: Callable[[str], None]) -> None:
    _subscribers.append(callback)


class BusListener:
    """Background task of a serving process: hears bumps from other processes."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks.append(asyncio.create_task(self._poll_forever(), name="bus-poll"))
        if settings.REDIS_URL:
            self._tasks.append(asyncio.create_task(self._redis_forever(), name="bus-redis"))
        elif settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
            self._tasks.append(asyncio.create_task(self._pg_forever(), name="bus-pg"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _refresh(self) -> None:
        from gateway_project.db import run_db

        try:
            await run_db(refresh_versions)
        except Exception as exc:
            log.warning("cache version re-check failed: %s", exc)

    async def _poll_forever(self) -> None:
        is_sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        interval = min(settings.CACHE_RECHECK_SECONDS, 1.0) if is_sqlite else settings.CACHE_RECHECK_SECONDS
        while True:
            await self._refresh()
            await asyncio.sleep(interval)

    async def _redis_forever(self) -> None:
        import redis.asyncio as aioredis

        while True:
            client = aioredis.Redis.from_url(settings.REDIS_URL)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    await self._refresh()  # anything missed while (re)connecting
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Redis invalidation listener lost its connection (%s); retrying", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    async def _pg_forever(self) -> None:
        import psycopg

        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(_pg_conninfo(), autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await self._refresh()
                    async for _notify in conn.notifies():
                        await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("PostgreSQL invalidation listener lost its connection (%s); retrying", exc)
                await asyncio.sleep(1)


def _pg_conninfo() -> str:
    from psycopg.conninfo import make_conninfo

    db = settings.DATABASES["default"]
    params = {
        "dbname": db.get("NAME"),
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": str(db["PORT"]) if db.get("PORT") else None,
    }
    return make_conninfo(**{k: v for k, v in params.items() if v})


listener = BusListener()


class VersionedValue:
    """A value built from the database, rebuilt when its namespace's version moves.

    Reads on the hot path are an attribute read and a dict lookup: no query while warm.
    """

    def __init__(self, namespace: str, loader: Callable[[], object]) -> None:
        self.namespace = namespace
        self._loader = loader
        self._value: object | None = None
        self._version = -1
        self._load_lock = threading.Lock()

    def is_fresh(self) -> bool:
        return self._value is not None and self._version == known_version(self.namespace)

    def peek(self):
        return self._value

    def get_sync(self):
        if not self.is_fresh():
            self._reload()
        return self._value

    async def get(self):
        if not self.is_fresh():
            from gateway_project.db import run_db

            await run_db(self._reload)
        return self._value

    def invalidate(self) -> None:
        self._version = -1

    def _reload(self) -> None:
        with self._load_lock:
            if self.is_fresh():
                return
            if self._value is None and self.namespace not in _known:
                refresh_versions()
            version = known_version(self.namespace)  # read before loading: a bump meanwhile reloads again
            self._value = self._loader()
            self._version = version
