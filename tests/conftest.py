"""Suite-wide fixtures: cache resets, secret-leak guard, CI strictness."""

from __future__ import annotations

import os
import re

import pytest

SECRET_RE = re.compile(
    rb"sk-[A-Za-z0-9_\-]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----|signature=\"[A-Za-z0-9+/=]{40,}"
)


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


def pytest_sessionfinish(session, exitstatus):
    """With CI=true a skipped test fails the run: CI must exercise everything it claims to."""
    if os.environ.get("CI") == "true" and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        skipped = reporter.stats.get("skipped", []) if reporter else []
        if skipped:
            reporter.write_line(f"CI=true: {len(skipped)} skipped test(s) fail the run", red=True)
            session.exitstatus = 1
