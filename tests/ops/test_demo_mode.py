"""`make run` on a fresh machine: demo mode serves the emulator's answers to the official SDK."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]


def env_for(tmp_path, **extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OCI_", "DATABASE_URL", "REDIS_URL", "GATEWAY_", "DJANGO_", "PYTEST"))
    }
    env.update(
        {
            "GATEWAY_VAR_DIR": str(tmp_path / "var"),
            "HOME": str(tmp_path),
            "GATEWAY_ENV_FILE": str(tmp_path / ".env"),
            "OCI_CONFIG_FILE": str(tmp_path / "no-oci" / "config"),
            "WORKERS": "1",
            **extra,
        }
    )
    return env


def read_until(proc, pattern, timeout=60) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if re.search(pattern, line):
            return lines
    seen = "".join(lines)
    raise AssertionError(f"did not see {pattern!r} in:\n{seen}")


@pytest.fixture
def demo_gateway(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = env_for(tmp_path, GATEWAY_DEMO="auto", PORT=str(port))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        lines = read_until(proc, r"Serving on http://")
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield proc, port, "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_demo_mode_end_to_end(demo_gateway):
    proc, port, banner = demo_gateway
    assert "DEMO MODE" in banner
    key = re.search(r"Demo API key: (sk-\S+)", banner).group(1)
    emulator_url = re.search(r"built-in OCI emulator at (http://\S+?)\.?$", banner, re.M).group(1)
    assert re.search(r"Demo admin login: admin / \S+", banner)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="meta.llama-3.3-70b-instruct", messages=[{"role": "user", "content": "Hello demo"}]
    )
    assert raw.headers["x-gateway-demo"] == "emulator"
    completion = raw.parse()
    assert completion.choices[0].message.content == "Emulated answer to: Hello demo"
    ledger = httpx.get(f"{emulator_url}/_emulator/ledger").json()
    entries = ledger["entries"] if isinstance(ledger, dict) else ledger
    entry = [e for e in entries if e["opcRequestId"] == raw.headers["x-request-id"]][0]
    assert completion.usage.total_tokens == entry["usage"]["totalTokens"]
    assert (
        "gateway_demo"
        in httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
    )


def test_outside_demo_mode_missing_credentials_stop_start_up(tmp_path):
    env = env_for(tmp_path)  # no GATEWAY_DEMO: like the image or production
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "no OCI credentials" in result.stderr
    assert "Traceback" not in result.stderr
