"""The usage writer process: the Redis stream consumer in a process of its own, beside the serving workers.

`manage.py serve` starts it (`manage.py write_usage --nice 10`) when Redis is configured, tells the workers
not to consume (USAGE_WRITER=process) and restarts it if it dies. Why a process: writing a batch of usage rows
is CPU work that, inside a worker, holds the GIL while requests wait; in a niced process the kernel runs a
worker's request first, and while it keeps up it runs on idle CPU only (usage/writer_pace.py). Records stay
durable meanwhile: they wait in the stream, and a restarted writer
claims what its predecessor left unacknowledged (usage/recorder.py).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from django.conf import settings

log = logging.getLogger("gateway.usage")

ROOT = Path(__file__).resolve().parents[1]
RESTART_DELAY_S = 1.0


def wanted() -> bool:
    """serve runs a writer process unless there is no Redis stream or the operator keeps it in the workers."""
    return bool(settings.REDIS_URL) and os.environ.get("USAGE_WRITER", "process") != "in-process"


class WriterSupervisor:
    """Runs `manage.py write_usage`, starts it again when it exits on its own, stops it with serve."""

    def __init__(self, nice: int = 10) -> None:
        self.argv = [sys.executable, str(ROOT / "manage.py"), "write_usage", "--nice", str(nice), "--pace",
                     "--parent-pid", str(os.getpid())]
        self.proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # no restart slips in between stop() reading the process and stopping it
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> WriterSupervisor:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT)
        self._thread = threading.Thread(target=self._watch, name="usage-writer-supervisor", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stopping.is_set():
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            log.warning("the usage writer process exited (%s); starting it again in %.0f s", code, RESTART_DELAY_S)
            if self._stopping.wait(RESTART_DELAY_S):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.proc = subprocess.Popen(self.argv, cwd=ROOT)

    def stop(self, timeout: float = 20.0) -> None:
        with self._lock:
            self._stopping.set()
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # the writer writes what it holds, then exits
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
