"""Usage records off the hot path: an in-memory queue written in batches.

`record()` never waits on the database. A flusher task of each serving process writes the queue with
one `bulk_create` per second (and on shutdown). If the database is unreachable, records stay queued;
past `USAGE_QUEUE_MAX` they spill to an append-only file under var/ that the next flush replays, so
nothing accepted is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from .models import UsageRecord

log = logging.getLogger("gateway.usage")

QUEUE_MAX = int(os.environ.get("USAGE_QUEUE_MAX", "50000"))


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
        data = asdict(self)
        data["key_id"] = data.pop("key_id")
        data["team_id"] = data.pop("team_id")
        data["user_agent"] = (data["user_agent"] or "")[:300]
        return UsageRecord(**data)

    def to_json(self) -> bytes:
        data = asdict(self)
        data["cost_usd"] = str(self.cost_usd)
        data["created_at"] = self.created_at.isoformat()
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes) -> UsageEvent:
        data = orjson.loads(raw)
        data["cost_usd"] = Decimal(data["cost_usd"])
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        return cls(**data)


class UsageRecorder:
    def __init__(self) -> None:
        self._queue: list[UsageEvent] = []
        self._lock = threading.Lock()
        self._task: asyncio.Task | None = None
        self._write_lock = threading.Lock()

    @property
    def spill_path(self) -> Path:
        return Path(settings.VAR_DIR) / f"usage-spill-{os.getpid()}.jsonl"

    def record(self, event: UsageEvent) -> None:
        with self._lock:
            if len(self._queue) < QUEUE_MAX:
                self._queue.append(event)
                return
        # The database has been unreachable long enough to fill the queue: keep the record on disk.
        with self._write_lock, open(self.spill_path, "ab") as fh:
            fh.write(event.to_json() + b"\n")

    def pending(self) -> int:
        return len(self._queue)

    def flush(self) -> int:
        """Write everything queued (and any spill files); return rows written. Sync: call from a thread."""
        with self._write_lock:
            written = self._replay_spills()
            with self._lock:
                batch, self._queue = self._queue, []
            if not batch:
                return written
            try:
                close_old_connections()
                UsageRecord.objects.bulk_create(
                    [e.to_row() for e in batch], batch_size=1000, ignore_conflicts=True
                )
                return written + len(batch)
            except Exception as exc:
                log.warning("usage flush failed (%s); %d records kept for the next try", exc, len(batch))
                with self._lock:
                    self._queue[:0] = batch
                return written
            finally:
                close_old_connections()

    def _replay_spills(self) -> int:
        written = 0
        for path in sorted(Path(settings.VAR_DIR).glob("usage-spill-*.jsonl")):
            try:
                events = [UsageEvent.from_json(line) for line in path.read_bytes().splitlines() if line.strip()]
                UsageRecord.objects.bulk_create([e.to_row() for e in events], batch_size=1000, ignore_conflicts=True)
                path.unlink()
                written += len(events)
            except Exception as exc:
                log.warning("could not replay %s yet: %s", path.name, exc)
                break
        return written

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_forever(), name="usage-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await asyncio.to_thread(self.flush)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(settings.USAGE_FLUSH_SECONDS)
            if self._queue or any(Path(settings.VAR_DIR).glob("usage-spill-*.jsonl")):
                await asyncio.to_thread(self.flush)


recorder = UsageRecorder()
