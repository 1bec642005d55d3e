"""The request ledger: one entry per request the emulator served (control endpoints excluded).

Entry fields (JSON): ``seq`` (monotonic, never reused, survives ``reset``), ``time`` (epoch s),
``method``, ``path``, ``query``, ``opcRequestId`` (the client's ``opc-request-id`` header or null),
``responseRequestId``, ``signature`` (``ok`` or a failure verdict: ``missing``, ``malformed``,
``unknown_key``, ``bad_signature``, ``bad_body_hash``, ``clock_skew``, ``bad_date``, ``bad_token``,
``expired_token``; ``api_key`` for Bearer auth on /openai/v1; ``disabled`` when verification is off),
``schema`` (``ok``, ``skipped``, or ``error: <message>``), ``status``, ``errorCode``, ``model``,
``apiFormat``, ``stream``, ``usage`` (what was billed: ``promptTokens``/``completionTokens``/
``totalTokens`` actually produced, null for failed requests), ``eventsWritten``,
``eventsAfterDisconnect``, ``disconnected``, ``fault`` (which fault shaped the response, or null),
``complete`` (false while the response is still being written), ``durationMs``.
"""

from __future__ import annotations

import asyncio
import collections
import time


class Ledger:
    def __init__(self, maxlen: int = 100_000):
        self._entries: collections.deque[dict] = collections.deque(maxlen=maxlen)
        self._seq = 0
        self._open = 0
        self._idle: asyncio.Event | None = None

    @property
    def seq(self) -> int:
        return self._seq

    def start(self, method: str, path: str, query: str, opc_request_id: str | None, response_id: str) -> dict:
        self._seq += 1
        entry = {
            "seq": self._seq, "time": time.time(), "method": method, "path": path, "query": query,
            "opcRequestId": opc_request_id, "responseRequestId": response_id, "signature": None,
            "schema": "skipped", "status": None, "errorCode": None, "model": None, "apiFormat": None,
            "stream": False, "usage": None, "eventsWritten": 0, "eventsAfterDisconnect": 0,
            "disconnected": False, "fault": None, "complete": False, "durationMs": None,
        }
        self._entries.append(entry)
        self._open += 1
        return entry

    def finish(self, entry: dict) -> None:
        if entry["complete"]:
            return
        entry["complete"] = True
        entry["durationMs"] = round((time.time() - entry["time"]) * 1000, 3)
        self._open -= 1
        if self._open == 0 and self._idle is not None:
            self._idle.set()
            self._idle = None

    def since(self, seq: int = 0) -> list[dict]:
        if not self._entries or self._entries[-1]["seq"] <= seq:
            return []
        out = []
        for entry in reversed(self._entries):
            if entry["seq"] <= seq:
                break
            out.append(entry)
        out.reverse()
        return out

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no entry is still being written (or timeout); return True when idle."""
        deadline = time.monotonic() + timeout
        while self._open > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._idle is None:
                self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def reset(self) -> None:
        self._entries = collections.deque((e for e in self._entries if not e["complete"]),
                                          maxlen=self._entries.maxlen)
