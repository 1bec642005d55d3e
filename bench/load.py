"""Load generators: wrk (compiled, with a Lua script for the POST) and a small streaming client."""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _lua_string(value: str) -> str:
    level = "=" * 4
    return f"[{level}[{value}]{level}]"


def wrk(
    url: str, body: bytes, headers: dict[str, str], *, connections: int, seconds: int, cpu: str | None = None
) -> WrkResult:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    for name, value in headers.items():
        if name.lower() in ("host", "content-length"):
            continue  # wrk sets both from the URL and the body
        lines.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")  # "[[" would open a string
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write("\n".join(lines) + "\n")
        script = fh.name
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s", "-s", script, url]
    if cpu:
        argv = ["taskset", "-c", cpu, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    Path(script).unlink()
    return _parse_wrk(out)


def _to_ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _parse_wrk(out: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors_match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(errors_match.group(1)) if errors_match else 0
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return WrkResult(rps, p50, p99, requests, errors)


@dataclass
class StreamResult:
    ttft_ms: list[float] = field(default_factory=list)
    ttlt_ms: list[float] = field(default_factory=list)
    chunks: int = 0
    errors: int = 0

    def p(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def ttft_p50(self) -> float:
        return statistics.median(self.ttft_ms) if self.ttft_ms else float("nan")

    @property
    def ttlt_p50(self) -> float:
        return statistics.median(self.ttlt_ms) if self.ttlt_ms else float("nan")


async def _stream_once(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict, result: StreamResult):
    start = time.perf_counter()
    first = None
    async with session.post(url, data=body, headers=headers) as resp:
        if resp.status != 200:
            result.errors += 1
            await resp.read()
            return
        async for line in resp.content:
            if line.startswith(b"data:") and b"[DONE]" not in line:
                # The first token: the first event that carries text (OpenAI or OCI shape).
                if first is None and (
                    b'"content":"' in line
                    and b'"content":""' not in line
                    or b'"text":"' in line
                    and b'"text":""' not in line
                ):
                    first = time.perf_counter()
                result.chunks += 1
    end = time.perf_counter()
    if first is not None:
        result.ttft_ms.append((first - start) * 1000)
    result.ttlt_ms.append((end - start) * 1000)


def stream_requests(url: str, body: bytes, headers_factory, *, count: int, concurrency: int = 1,
                    cpu: str | None = None) -> StreamResult:
    """`count` streamed calls; with `cpu`, this thread (the load generator) runs on that CPU meanwhile."""
    result = StreamResult()
    if cpu is not None:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {int(cpu)})
        try:
            return stream_requests(url, body, headers_factory, count=count, concurrency=concurrency)
        finally:
            os.sched_setaffinity(0, before)

    async def run():
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            semaphore = asyncio.Semaphore(concurrency)

            async def one():
                async with semaphore:
                    await _stream_once(session, url, body, headers_factory(), result)

            await asyncio.gather(*(one() for _ in range(count)))

    asyncio.run(run())
    return result
