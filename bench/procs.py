"""Starting and measuring the processes a benchmark compares."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its children that were waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process plus its live descendants (uvicorn/gunicorn workers)."""
    total = cpu_seconds(pid)
    for child in _children(pid):
        try:
            total += tree_cpu_seconds(child)
        except FileNotFoundError:
            pass
    return total


def rss_mib(pid: int) -> float:
    total = 0
    for p in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            pass
    return out


def _descendants(pid: int) -> list[int]:
    out = []
    for child in _children(pid):
        out.append(child)
        out += _descendants(child)
    return out


class Service:
    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        *,
        env: dict | None = None,
        cpu: str | None = None,
        cwd: str | None = None,
        log: Path | None = None,
    ) -> None:
        self.name, self.port = name, port
        prefix = ["taskset", "-c", cpu] if cpu and _has_taskset() else []
        self.log = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115  (lives as long as the process)
        self.proc = subprocess.Popen([*prefix, *argv], env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(port, self.proc)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _has_taskset() -> bool:
    from shutil import which

    return which("taskset") is not None and (os.cpu_count() or 1) > 1
