"""Suite-wide fixtures: cache resets, secret-leak guard, CI strictness."""

from __future__ import annotations

import os
import re

import pytest

# The usage stream consumer lingers 250 ms after a partial batch to write in bulk under load (usage/recorder.py).
# Here a record would then reach the database up to that long after its request, maybe once its test is over
# and the next one's tables are in use: write at once (gateway processes started by the tests inherit this).
os.environ.setdefault("USAGE_STREAM_LINGER_SECONDS", "0")
# The test process keeps Python's collector as it is; tests/ops/test_gc_tuning.py covers the worker's settings.
os.environ.setdefault("GATEWAY_GC_THRESHOLDS", "off")

SECRET_RE = re.compile(
    rb"sk-[A-Za-z0-9_\-]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----|signature=\"[A-Za-z0-9+/=]{40,}"
)


@pytest.fixture(scope="session", autouse=True)
def _own_redis_keys():
    """Concurrent test runs on one machine share Redis: give this run its own key prefix."""
    from django.conf import settings

    settings.REDIS_KEY_PREFIX = f"gateway-test-{os.getpid()}:"
    yield


@pytest.fixture(scope="session", autouse=True)
def _flush_survives_deadlocks():
    """Emptying the tables between tests can deadlock with a gateway process still writing usage in the
    background (PostgreSQL then aborts one side); the flush is simply tried again."""
    import time

    from django.core.management.base import CommandError
    from django.core.management.commands import flush

    original = flush.Command.handle

    def handle(self, **options):
        for _attempt in range(10):
            try:
                return original(self, **options)
            except CommandError as exc:
                if "deadlock" not in str(exc.__cause__).lower():
                    raise
                time.sleep(0.2)
        return original(self, **options)

    flush.Command.handle = handle
    yield
    flush.Command.handle = original


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Tables are emptied between tests, so version numbers can repeat: start every test cold."""
    from models_registry import bus
    from models_registry.catalog import catalog_cache
    from usage import auth

    bus._known.clear()
    catalog_cache.invalidate()
    auth._principals.invalidate()
    yield


@pytest.fixture(autouse=True)
def _no_secrets_in_logs(caplog):
    """Fail any test whose captured log lines contain a key, a private key or an OCI signature."""
    yield
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records).encode()
    leak = SECRET_RE.search(text)
    assert leak is None, f"a secret reached the logs: {leak.group(0)[:16]!r}…"


def pytest_collection_modifyitems(config, items):
    """Tests whose premise is "no Redis" are deselected (not skipped) when this run has Redis."""
    if not os.environ.get("REDIS_URL"):
        return
    dropped = [item for item in items if item.get_closest_marker("no_redis")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("no_redis")]


def pytest_sessionfinish(session, exitstatus):
    """With CI=true a skipped test fails the run: CI must exercise everything it claims to."""
    # The SQLite smoke stage runs without Redis on purpose (CI_SMOKE=1): its Redis-only tests ran, unskipped,
    # in the full PostgreSQL + Redis stage.
    if os.environ.get("CI") == "true" and not os.environ.get("CI_SMOKE") and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        skipped = reporter.stats.get("skipped", []) if reporter else []
        if skipped:
            reporter.write_line(f"CI=true: {len(skipped)} skipped test(s) fail the run", red=True)
            session.exitstatus = 1


# --- The OCI emulator and a live gateway in front of it ------------------------------------------

from oci_emulator.pytest_plugin import emulator, oci_emulator  # noqa: E402,F401  (fixtures)

TEST_MODELS = {
    "ondemand": [
        "meta.llama-3.3-70b-instruct",
        "xai.grok-4",
        "openai.gpt-oss-120b",
        "cohere.command-r-08-2024",
        "cohere.command-a-03-2025",
        "cohere.rerank-v4.0-fast",
        # reasoning and vision models (GENERIC and COHEREV2) for the end-to-end chat suites
        "xai.grok-3-mini",
        "openai.gpt-5",
        "cohere.command-a-vision",
        "cohere.command-a-reasoning",
    ],
    "embedding": ["cohere.embed-v4.0", "cohere.embed-english-v3.0"],
}


@pytest.fixture
def oci_settings(emulator, settings):
    """Point the gateway at the emulator with the emulator's generated OCI config."""
    from api.upstream.signing import forget_signers

    settings.OCI_GENAI_ENDPOINT = emulator.base_url
    settings.OCI_GENAI_MANAGEMENT_ENDPOINT = emulator.base_url
    settings.OCI_CONFIG_FILE = emulator.config_file
    settings.OCI_CONFIG_PROFILE = emulator.profile
    settings.OCI_REGION = "us-chicago-1"
    settings.OCI_COMPARTMENT = emulator.compartment_id
    settings.HEARTBEAT_SECONDS = 15.0
    forget_signers()
    yield emulator
    forget_signers()


@pytest.fixture(autouse=True)
def _ledger_stays_clean(request):
    """Fail a test whose traffic the emulator rejected for a bad signature or schema, unless provoked."""
    if "emulator" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("emulator")
    since = server.last_seq()
    yield
    if request.node.get_closest_marker("provokes_rejection"):
        return
    for entry in server.ledger(since, wait=False):
        signature, schema = entry.get("signature"), entry.get("schema") or "ok"
        assert signature in (None, "ok", "api_key", "disabled"), f"emulator rejected a signature: {entry}"
        assert not str(schema).startswith("error"), f"emulator rejected a body: {entry}"


class LiveGateway:
    """A real uvicorn server running the gateway's ASGI app in a thread of the test process."""

    def __init__(self, app="gateway_project.asgi:application") -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = None
        self.thread = None

    def start(self) -> LiveGateway:
        import threading
        import time

        import uvicorn

        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, lifespan="on", loop="asyncio",  # uvloop crashed once
            # stopping a loop in a thread mid-run; asyncio's loop is the safe choice for test servers
            log_level="warning", access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-gateway", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live gateway did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(timeout=20)


@pytest.fixture(scope="session")
def live_gateway(django_db_setup, django_db_blocker):
    server = LiveGateway().start()
    yield server
    with django_db_blocker.unblock():
        server.stop()


class GatewayHandle:
    def __init__(self, live: LiveGateway, emulator, key: str) -> None:
        self.base_url = live.base_url
        self.api_base = live.base_url + "/v1"
        self.emulator = emulator
        self.key = key

    def openai(self, **kwargs):
        import openai

        return openai.OpenAI(base_url=self.api_base, api_key=kwargs.pop("api_key", self.key), max_retries=0,
                             **kwargs)

    def async_openai(self, **kwargs):
        import openai

        return openai.AsyncOpenAI(base_url=self.api_base, api_key=kwargs.pop("api_key", self.key), max_retries=0,
                                  **kwargs)

    def usage_records(self, count: int, timeout: float = 10.0) -> list:
        """Wait until at least `count` usage records are stored (the live server writes them), return them."""
        import time

        from usage.models import UsageRecord
        from usage.recorder import recorder

        deadline = time.monotonic() + timeout
        while True:
            recorder.flush()  # the in-memory queue is shared with the server thread
            rows = list(UsageRecord.objects.order_by("id"))
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)


@pytest.fixture
def gateway(live_gateway, oci_settings, transactional_db):
    """The live gateway with the test catalogue (pointing at the emulator) and one API key."""
    import yaml

    from models_registry.services import models_import
    from usage.keys import api_key_create

    models = {kind: [{"name": m, "model_id": m} for m in names] for kind, names in TEST_MODELS.items()}
    text = yaml.safe_dump([{"region": "us-chicago-1", "compartment_id": oci_settings.compartment_id,
                            "models": models}])
    models_import(text=text, source="tests")
    from usage.recorder import recorder

    recorder.resume()
    _key, secret = api_key_create(name="test-key")
    handle = GatewayHandle(live_gateway, oci_settings, secret)
    yield handle
    # The live server keeps writing usage in the background; writing while the test database is
    # emptied for the next test deadlocks PostgreSQL. Write what is queued, then hold further writes.
    recorder.flush()
    recorder.pause()


class GatewayProcess:
    """A second, separate gateway process (manage.py serve) on the test database."""

    def __init__(self, env_extra: dict[str, str]) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env_extra = env_extra
        self.proc = None

    def env(self) -> dict[str, str]:
        """The environment of a gateway process on the test database, Redis and var directory."""
        from django.conf import settings

        db = settings.DATABASES["default"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        if db["ENGINE"].endswith("postgresql"):
            env["DATABASE_URL"] = (
                f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
            )
        else:
            env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
        env.update({"REDIS_URL": settings.REDIS_URL, "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
                    "GATEWAY_VAR_DIR": str(settings.VAR_DIR), "WORKERS": "1",
                    "CACHE_RECHECK_SECONDS": "5", "GATEWAY_DEMO": "", **self.env_extra})
        return env

    def start(self) -> GatewayProcess:
        import subprocess
        import sys
        import time
        from pathlib import Path

        import httpx

        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=Path(__file__).resolve().parents[1], env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("second gateway exited: " + self.proc.stdout.read().decode()[-2000:])
            try:
                if httpx.get(self.base_url + "/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("second gateway did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except Exception:
                self.proc.kill()


@pytest.fixture(scope="session")
def gateway_process(django_db_setup, oci_emulator):
    proc = GatewayProcess(
        {"OCI_CONFIG_FILE": oci_emulator.config_file, "OCI_CONFIG_PROFILE": oci_emulator.profile,
         "OCI_GENAI_ENDPOINT": oci_emulator.base_url, "OCI_REGION": "us-chicago-1",
         "OCI_COMPARTMENT": oci_emulator.compartment_id}
    ).start()
    yield proc
    proc.stop()
