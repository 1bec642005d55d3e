"""Usage records off the hot path, never lost.

Without Redis: `record()` appends to an in-memory queue that a flusher task writes once a second
(and on shutdown); when the database cannot take them, records stay queued, and past
`USAGE_QUEUE_MAX` they spill to an append-only file under var/ that the next flush replays.

With `REDIS_URL`: `record_durable()` appends the record to the Redis stream `gateway:usage` before the
response completes, so a process killed right after answering loses nothing; a consumer of one consumer
group writes the stream to the database and acknowledges only after commit, and pending entries of a dead
consumer are claimed by the others. `manage.py serve` runs that consumer in a writer process of its own
beside the workers (usage/writer_process.py); served any other way, every worker runs one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from . import limits
from .models import UsageRecord
from .writer import write_batch

log = logging.getLogger("gateway.usage")

QUEUE_MAX = int(os.environ.get("USAGE_QUEUE_MAX", "50000"))
BATCH = 2000
GROUP = "usage-writers"


def stream_name() -> str:
    return settings.REDIS_KEY_PREFIX + "usage"
CLAIM_EVERY_S = 5.0
CLAIM_IDLE_MS = int(os.environ.get("USAGE_CLAIM_IDLE_MS", "15000"))  # a dead consumer's entries after this
# After writing a partial batch the consumer waits this long before reading again, so that under load it
# writes (and tells the live feed) once per linger, not once per request: at one request at a time a write
# per request cost more CPU than the request itself. Records still reach the database well within a second.
def linger_seconds() -> float:
    return float(os.environ.get("USAGE_STREAM_LINGER_SECONDS", "0.25"))


def writer_process() -> bool:
    """True in a worker whose stream is written by a separate writer process (`manage.py serve` with Redis).

    Writing a batch costs CPU (about 100 µs a row) that, in a worker, competes with requests for the GIL: at
    one request at a time it was the whole of the p99 (9.5 ms against 2.3 ms without it). In a process of
    its own, niced, the kernel preempts it whenever a worker has a request (usage/writer_process.py).
    """
    return os.environ.get("USAGE_WRITER") == "process"


@dataclass(slots=True)
class UsageEvent:
    request_id: str
    endpoint: str
    status: int
    key_id: int | None = None
    team_id: int | None = None
    public_model: str = ""
    deployment: str = ""
    region: str = ""
    error_type: str = ""
    streamed: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    usage_source: str = "none"
    cost_usd: Decimal = Decimal(0)
    latency_ms: int = 0
    ttft_ms: int | None = None
    upstream_request_id: str = ""
    client_ip: str | None = None
    user_agent: str = ""
    metadata: dict = field(default_factory=dict)
    created_at: datetime = field(default_factory=timezone.now)

    def to_row(self) -> UsageRecord:
        # Not asdict(): it deep-copies every value, a third of the usage writer's CPU.
        data = {name: getattr(self, name) for name in _EVENT_FIELDS}
        data["user_agent"] = (data["user_agent"] or "")[:300]
        return UsageRecord(**data)

    def to_json(self) -> bytes:
        # orjson serialises the dataclass itself (datetimes in ISO 8601, Decimal through str): the same
        # bytes as asdict() + isoformat(), at a tenth of the cost on the request path.
        return orjson.dumps(self, default=str)

    @classmethod
    def from_json(cls, raw: bytes) -> UsageEvent:
        data = orjson.loads(raw)
        data["cost_usd"] = Decimal(data["cost_usd"])
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        return cls(**data)


_EVENT_FIELDS = tuple(f.name for f in fields(UsageEvent))


def _write(events: list[UsageEvent]) -> int:
    close_old_connections()
    try:
        written = 0
        for i in range(0, len(events), BATCH):
            written += write_batch(events[i : i + BATCH])
        return written
    finally:
        close_old_connections()


def _announce(events: list[UsageEvent]) -> None:
    """Tell live dashboards about a written batch (usage/dashboards/feed.py); never fails the flush."""
    try:
        from .dashboards.feed import publish

        publish(events)
    except Exception as exc:
        log.warning("live feed: %s", exc)


class UsageRecorder:
    def __init__(self) -> None:
        self._queue: list[UsageEvent] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._paused = False
        self._group_ready = False
        self._next_claim = 0.0
        self._tasks: list[asyncio.Task] = []
        self._stopping = False  # the stream consumer ends at its loop's next turn (see _cancel)
        self._redis = None
        self._consumer = f"{socket.gethostname()}-{os.getpid()}"

    # --- hand-off from the request path -------------------------------------------------------
    def record(self, event: UsageEvent) -> None:
        """Queue a record without waiting (client disconnects, errors)."""
        with self._lock:
            if len(self._queue) < QUEUE_MAX:
                self._queue.append(event)
                return
        self._spill([event])

    async def record_durable(self, event: UsageEvent, *, settle: limits.Reservation | None = None) -> None:
        """Queue a record; with Redis, make it durable in the stream before returning.

        `settle`: the call's limits reservation, settled with the record's real usage. With Redis the settle
        and the append to the stream go in one pipeline, one round trip (usage/limits.py).
        """
        if settings.REDIS_URL:
            try:
                await limits.settle(settle, tokens=event.total_tokens, cost_usd=event.cost_usd,
                                    append=(stream_name(), {"e": event.to_json()}))
                return
            except Exception as exc:  # Redis down: the in-memory path still keeps it
                log.warning("usage stream unavailable (%s); queueing in memory", exc)
        else:
            await limits.settle(settle, tokens=event.total_tokens, cost_usd=event.cost_usd)
        self.record(event)

    async def record_sent(self, event: UsageEvent, *, settle: limits.Reservation | None = None):
        """`record_durable` in two halves, so that a response need not wait for Redis's answer.

        With Redis and its link open, the settle and the append are written to the link before this
        returns, and a process killed from then on loses nothing: the bytes are the kernel's, and Redis reads
        them whatever becomes of this process. Returns the wait for Redis's acknowledgement (a coroutine
        function; it keeps the record in memory when the append did not land), for the caller to run once
        its response has left. Returns None when the record was handed over in full here (no Redis, no open
        link, or a link so backed up that the commands still wait in this process).
        """
        if settings.REDIS_URL:
            idle = limits.link_idle()
            confirm = limits.start_settle_and_append(settle, tokens=event.total_tokens, cost_usd=event.cost_usd,
                                                     append=(stream_name(), {"e": event.to_json()}))
            if confirm is not None:
                if idle:
                    limits.send_queued()  # alone on the link: it leaves now
                else:
                    await asyncio.sleep(0)  # the loop iteration's write carries it with the others
                acknowledged = functools.partial(self._acknowledged, confirm, event)
                if limits.all_sent():
                    return acknowledged
                await acknowledged()
                return None
        await self.record_durable(event, settle=settle)
        return None

    async def _acknowledged(self, confirm, event: UsageEvent) -> None:
        try:
            await confirm()
        except asyncio.CancelledError:  # a shutdown: kept in memory as well (the writer refuses a duplicate)
            self.record(event)
            raise
        except Exception as exc:
            log.warning("usage stream unavailable (%s); queueing in memory", exc)
            self.record(event)

    def pending(self) -> int:
        return len(self._queue)

    # --- writing ------------------------------------------------------------------------------
    @property
    def spill_path(self) -> Path:
        return Path(settings.VAR_DIR) / f"usage-spill-{os.getpid()}.jsonl"

    def _spill(self, events: list[UsageEvent]) -> None:
        with open(self.spill_path, "ab") as fh:
            fh.write(b"".join(e.to_json() + b"\n" for e in events))

    def pause(self) -> None:
        """Stop writing (after any write in progress) until resume(): tests empty tables between cases."""
        with self._write_lock:
            self._paused = True

    def resume(self) -> None:
        self._paused = False

    def _write_stream_batch(self, events: list[UsageEvent]) -> bool:
        with self._write_lock:
            if self._paused:
                return False
            _write(events)
            return True

    def flush(self) -> int:
        """Write the in-memory queue and any spill files; return rows written. Sync: call from a thread."""
        with self._write_lock:
            if self._paused:
                return 0
            written = self._replay_spills()
            with self._lock:
                batch, self._queue = self._queue, []
            if not batch:
                return written
            try:
                written += _write(batch)
                _announce(batch)
                return written
            except Exception as exc:
                log.warning("usage flush failed (%s); %d records kept for the next try", exc, len(batch))
                with self._lock:
                    self._queue[:0] = batch
                    overflow = len(self._queue) - QUEUE_MAX
                    if overflow > 0:
                        spilled, self._queue = self._queue[:overflow], self._queue[overflow:]
                        self._spill(spilled)
                return written

    def _replay_spills(self) -> int:
        written = 0
        for path in sorted(Path(settings.VAR_DIR).glob("usage-spill-*.jsonl")):
            try:
                events = [UsageEvent.from_json(line) for line in path.read_bytes().splitlines() if line.strip()]
                written += _write(events)
                path.unlink()
            except Exception as exc:
                log.warning("could not replay %s yet: %s", path.name, exc)
                break
        return written

    # --- background tasks ---------------------------------------------------------------------
    def _client(self):
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        return self._redis

    def start(self) -> None:
        if any(not t.done() for t in self._tasks):
            return
        from .dashboards import feed

        feed.bind_loop(asyncio.get_running_loop())  # where the live feed schedules its group sends
        self._stopping = False
        self._tasks = [asyncio.create_task(self._flush_forever(), name="usage-flusher")]
        if settings.REDIS_URL and not writer_process():
            self._tasks.append(asyncio.create_task(self._consume_forever(), name="usage-stream-consumer"))

    async def stop(self) -> None:
        await self._cancel(self._tasks)
        self._tasks = []
        await asyncio.to_thread(self.flush)
        if settings.REDIS_URL and not writer_process():
            await self._drain_and_close()

    async def consume_until(self, stop: asyncio.Event) -> None:
        """The stream consumer alone until `stop` is set, then one last batch (the writer process)."""
        from .dashboards import feed

        feed.bind_loop(asyncio.get_running_loop())
        self._consumer += "-writer"
        self._stopping = False
        task = asyncio.create_task(self._consume_forever(), name="usage-stream-consumer")
        try:
            await stop.wait()
        finally:
            await self._cancel([task])
            await self._drain_and_close()

    async def _cancel(self, tasks: list[asyncio.Task], give_up_after: float = 15.0) -> None:
        """Cancel the background tasks and wait until they have ended.

        redis-py (8.1) now and then swallows the cancellation of a blocking XREADGROUP (1 in 40 cancels of an
        idle consumer here) and the consumer would read on forever: a shutdown hung, and a writer process whose
        `serve` was gone never exited. So the consumer also stops at its loop's next turn (`_stopping`, within
        one read's block) and is cancelled again until it has ended.
        """
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + give_up_after
        pending = {t for t in tasks if not t.done()}
        while pending:
            for task in pending:
                task.cancel()
            _done, pending = await asyncio.wait(pending, timeout=0.5)
            if pending and loop.time() > deadline:
                log.warning("usage: %d background task(s) did not stop; leaving them", len(pending))
                return

    async def _drain_and_close(self) -> None:
        try:
            await self._drain_stream_once(block_ms=None)
        except Exception as exc:
            log.warning("could not drain the usage stream at shutdown: %s", exc)
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(settings.USAGE_FLUSH_SECONDS)
            if self._queue or any(Path(settings.VAR_DIR).glob("usage-spill-*.jsonl")):
                await asyncio.to_thread(self.flush)

    async def _ensure_group(self) -> None:
        import redis

        try:
            await self._client().xgroup_create(stream_name(), GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _drain_stream_once(self, block_ms: int | None) -> int:
        """Read, write and acknowledge one batch of stream entries.

        New entries take one command; every CLAIM_EVERY_S (and first) the consumer also takes back its own
        unacknowledged entries and those a dead consumer left pending for CLAIM_IDLE_MS.
        """
        import redis

        client = self._client()
        stream = stream_name()
        if not self._group_ready:
            await self._ensure_group()
            self._group_ready = True
        entries: list = []
        try:
            if time.monotonic() >= self._next_claim:
                self._next_claim = time.monotonic() + CLAIM_EVERY_S
                _next, claimed, _deleted = await client.xautoclaim(
                    stream, GROUP, self._consumer, min_idle_time=CLAIM_IDLE_MS, start_id="0-0", count=BATCH
                )
                entries += list(claimed)
                mine = await client.xreadgroup(GROUP, self._consumer, {stream: "0"}, count=BATCH)
                entries += [e for _s, items in mine for e in items]
            if not entries:
                fresh = await client.xreadgroup(GROUP, self._consumer, {stream: ">"}, count=BATCH, block=block_ms)
                entries = [e for _s, items in fresh for e in items]
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                self._group_ready = False  # the stream was deleted: create the group again next time
            raise
        entries = [(eid, data) for eid, data in entries if data]
        if not entries:
            return 0
        events = [UsageEvent.from_json(data[b"e"]) for _eid, data in entries]
        if not await asyncio.to_thread(self._write_stream_batch, events):
            return 0  # paused: the entries stay pending for later
        _announce(events)
        ids = [eid for eid, _ in entries]
        async with client.pipeline(transaction=False) as pipe:
            pipe.xack(stream, GROUP, *ids)
            pipe.xdel(stream, *ids)
            await pipe.execute()
        return len(events)

    async def _consume_forever(self) -> None:
        linger = linger_seconds()
        while not self._stopping:
            try:
                if 0 < await self._drain_stream_once(block_ms=1000) < BATCH and linger > 0:
                    await asyncio.sleep(linger)  # let the next records gather: one write for many
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("usage stream consumer: %s; retrying", exc)
                await asyncio.sleep(1)


recorder = UsageRecorder()
