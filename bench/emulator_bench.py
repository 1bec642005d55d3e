"""Throughput of the OCI emulator on one core.

Starts ``python -m oci_emulator`` in a subprocess pinned to one CPU (``taskset -c 0``), then drives it
from another CPU with many keep-alive connections sending OCI-signed, non-streaming requests and
reports requests/s. Requests are signed once up front with the emulator's generated key (a signed
request stays valid for the 5-minute clock-skew window and the emulator verifies every copy), so the
load generator does not spend its CPU on RSA signing. The generator is a small asyncio protocol
client (uvloop) so that it is not the bottleneck.

    .venv/bin/python bench/emulator_bench.py                 # chat, 10 s, 64 connections
    .venv/bin/python bench/emulator_bench.py --kind embed --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

_CL_RE = re.compile(rb"content-length: *(\d+)", re.I)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bodies(kind: str, compartment: str, n: int) -> tuple[str, list[dict]]:
    from oci_emulator.testing import chat_body

    if kind == "chat":
        return "/20231130/actions/chat", [
            chat_body(
                "meta.llama-3.3-70b-instruct", f"Benchmark prompt number {i}", compartment_id=compartment, maxTokens=64
            )
            for i in range(n)
        ]
    if kind == "cohere":
        return "/20231130/actions/chat", [
            chat_body("cohere.command-r-08-2024", f"Benchmark prompt {i}", "COHERE", compartment_id=compartment)
            for i in range(n)
        ]
    if kind == "embed":
        return "/20231130/actions/embedText", [
            {
                "compartmentId": compartment,
                "inputs": [f"benchmark sentence {i}"],
                "servingMode": {"servingType": "ON_DEMAND", "modelId": "cohere.embed-english-light-v3.0"},
            }
            for i in range(n)
        ]
    if kind == "rerank":
        return "/20231130/actions/rerankText", [
            {
                "compartmentId": compartment,
                "input": f"query {i}",
                "documents": ["alpha doc", "beta doc", "query doc"],
                "servingMode": {"servingType": "ON_DEMAND", "modelId": "cohere.rerank-v4.0-fast"},
            }
            for i in range(n)
        ]
    raise SystemExit(f"unknown kind {kind}")


def signed_raw_requests(base_url: str, config_file: str, path: str, bodies: list[dict]) -> list[bytes]:
    """Sign each body like the oci SDK does and render it as raw HTTP/1.1 request bytes."""
    import oci
    import orjson
    import requests

    signer = oci.signer.Signer.from_config(oci.config.from_file(config_file))
    out = []
    for i, body in enumerate(bodies):
        data = orjson.dumps(body)
        prepared = requests.Request(
            "POST",
            base_url + path,
            data=data,
            headers={
                "content-type": "application/json",
                "accept": "application/json",
                "opc-request-id": f"BENCH{i:027d}",
            },
        ).prepare()
        signer(prepared)
        lines = [f"POST {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in prepared.headers.items()]
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    return out


class _Conn(asyncio.Protocol):
    def __init__(self, reqs, stats, deadline):
        self.reqs, self.stats, self.deadline = reqs, stats, deadline
        self.buf = b""
        self.i = 0
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.t = transport
        self._send()

    def _send(self):
        self.t0 = time.perf_counter()
        self.t.write(self.reqs[self.i % len(self.reqs)])
        self.i += 1

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            m = _CL_RE.search(self.buf, 0, end)
            length = int(m.group(1)) if m else 0
            total = end + 4 + length
            if len(self.buf) < total:
                return
            status = int(self.buf[9:12])
            self.buf = self.buf[total:]
            now = time.perf_counter()
            self.stats["n"] += 1
            if status != 200:
                self.stats["errors"] += 1
            if len(self.stats["lat"]) < 200_000:
                self.stats["lat"].append(now - self.t0)
            if now >= self.deadline:
                self.t.close()
                return
            self._send()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(None)


async def _drive(host, port, reqs, connections, seconds):
    loop = asyncio.get_running_loop()
    stats = {"n": 0, "errors": 0, "lat": []}
    deadline = time.perf_counter() + seconds
    conns = []
    for _ in range(connections):
        _t, proto = await loop.create_connection(lambda: _Conn(reqs, stats, deadline), host, port)
        conns.append(proto)
    t0 = time.perf_counter()
    await asyncio.gather(*(c.done for c in conns))
    return stats, time.perf_counter() - t0


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run(kind="chat", duration=10.0, connections=64, server_cpu="0", client_cpu="1", warmup=2.0) -> dict:
    workdir = tempfile.mkdtemp(prefix="emubench_")
    port = _free_port()
    cmd = [sys.executable, "-m", "oci_emulator", "--port", str(port), "--workdir", workdir, "--log-level", "error"]
    if server_cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(server_cpu)] + cmd
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT)
    )
    try:
        for line in proc.stdout:
            if line.startswith("# base URL"):
                break
        base = f"http://127.0.0.1:{port}"
        if client_cpu is not None and hasattr(os, "sched_setaffinity"):
            try:
                os.sched_setaffinity(0, {int(client_cpu)})
            except (OSError, ValueError):
                pass
        from oci_emulator.server import EmulatorClient

        client = EmulatorClient(base, config_file=os.path.join(workdir, "config"))
        for _ in range(200):
            try:
                client.last_seq()
                break
            except Exception:
                time.sleep(0.05)
        path, bodies = _bodies(kind, client.compartment_id, 32)
        reqs = signed_raw_requests(base, client.config_file, path, bodies)
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(_drive("127.0.0.1", port, reqs, connections, warmup))
        cpu0 = _cpu_seconds(proc.pid)
        stats, elapsed = asyncio.run(_drive("127.0.0.1", port, reqs, connections, duration))
        cpu1 = _cpu_seconds(proc.pid)
        cpu_used = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
        entries = client.ledger(since=client.last_seq() - 5, wait=True)
        assert all(e["signature"] == "ok" and e["schema"] in ("ok", "skipped") for e in entries), entries[:1]
        lat = sorted(stats["lat"])
        return {
            "kind": kind,
            "connections": connections,
            "seconds": round(elapsed, 2),
            "requests": stats["n"],
            "errors": stats["errors"],
            "rps": round(stats["n"] / elapsed),
            "p50_ms": round(statistics.median(lat) * 1000, 2) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None,
            "server_cpu": server_cpu,
            "server_cpu_seconds": round(cpu_used, 2) if cpu_used else None,
            # requests per second of server CPU time: what one fully available core sustains, even on a
            # busy machine where the wall-clock rate is lowered by other processes
            "rps_per_cpu_second": round(stats["n"] / cpu_used) if cpu_used else None,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", default="chat", choices=["chat", "cohere", "embed", "rerank"])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", default="1")
    args = ap.parse_args(argv)
    r = run(args.kind, args.duration, args.connections, args.server_cpu, args.client_cpu)
    print(
        f"emulator {r['kind']} non-streaming: {r['rps']} req/s on one core (cpu {r['server_cpu']}), "
        f"{r['connections']} connections, {r['requests']} requests in {r['seconds']} s, {r['errors']} errors, "
        f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms; server used {r['server_cpu_seconds']} CPU-s = "
        f"{r['rps_per_cpu_second']} requests per CPU-second"
    )
    return 0 if r["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
