"""`GET /ready`: may this process be sent traffic? (`/health` only says it is alive.)

Three checks, cheap enough for a Kubernetes readiness probe every few seconds:

- database: `SELECT 1` in a worker thread, given `DB_TIMEOUT_S`;
- catalog: the cached routing table is loaded (a reload when the catalog changed, with the same bound);
- routes: every public model the catalog serves has at least one deployment whose circuit breaker is not
  open, as this process knows it (api/routing.py: its own failures, and openings heard through Redis).

The body names the failed checks and, for routes, the public models whose every deployment is open;
never a host, user or error text (those go to the log). Concurrent probes share one database check, so a
hung database does not pile up threads.
"""

from __future__ import annotations

import asyncio
import logging

from django.db import connection

log = logging.getLogger("gateway.ready")

DB_TIMEOUT_S = 2.0
CATALOG_TIMEOUT_S = 3.0

_db_check: asyncio.Future | None = None


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def check_database() -> str:
    """'ok', or why not: 'timeout' or 'unreachable'."""
    global _db_check
    from gateway_project.db import run_db

    loop = asyncio.get_running_loop()
    if _db_check is None or _db_check.done() or _db_check.get_loop() is not loop:
        _db_check = asyncio.ensure_future(run_db(_select_one))
    try:
        await asyncio.wait_for(asyncio.shield(_db_check), timeout=DB_TIMEOUT_S)
    except TimeoutError:
        log.warning("readiness: the database did not answer SELECT 1 within %.1f s", DB_TIMEOUT_S)
        return "timeout"
    except Exception as exc:
        log.warning("readiness: the database is unreachable: %s: %s", type(exc).__name__, exc)
        return "unreachable"
    return "ok"


async def check_catalog():
    """(status, catalog or None)."""
    from models_registry.catalog import get_catalog

    try:
        catalog = await asyncio.wait_for(get_catalog(), timeout=CATALOG_TIMEOUT_S)
    except TimeoutError:
        log.warning("readiness: the catalog did not load within %.1f s", CATALOG_TIMEOUT_S)
        return "timeout", None
    except Exception as exc:
        log.warning("readiness: the catalog could not be loaded: %s: %s", type(exc).__name__, exc)
        return "not_loaded", None
    if catalog is None:
        return "not_loaded", None
    return "ok", catalog


def models_without_route(catalog) -> list[str]:
    """Public models whose every deployment has an open circuit breaker in this process."""
    from . import routing

    return sorted(name for name, entry in catalog.models.items()
                  if entry.deployments and all(routing.is_open(d.name) for d in entry.deployments))


async def readiness() -> tuple[int, dict]:
    """(HTTP status, body) of `GET /ready`."""
    database, (catalog_status, catalog) = await asyncio.gather(check_database(), check_catalog())
    checks = {"database": database, "catalog": catalog_status}
    body: dict = {}
    if catalog is not None:
        blocked = models_without_route(catalog)
        checks["routes"] = "ok" if not blocked else "all_open"
        body["models"] = len(catalog.models)
        if blocked:
            body["models_all_open"] = blocked
    else:
        checks["routes"] = "unknown"
    ready = all(value == "ok" for value in checks.values())
    return (200 if ready else 503), {"status": "ready" if ready else "not_ready", "checks": checks, **body}
