"""Server-side render times of the usage dashboards over a big usage table, and EXPLAIN of every query.

    # once: a separate database filled with generated usage (about 10 minutes for 10M rows)
    createdb -h 127.0.0.1 -U postgres dash_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dash_bench .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dash_bench .venv/bin/python manage.py generate_usage \
        --rows 10000000 --keys 5000 --seed 42
    # then
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dash_bench .venv/bin/python -m bench.dashboards_bench

Each case renders one page through Django's test client (full middleware stack, staff session, template
rendering; no page or query cache exists) `--loads` times after one warm-up load, and reports the
p50/p95/max wall time. Every SQL statement of one load is then run again under EXPLAIN; a sequential scan
of the raw usage table fails the case. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

RAW_TABLE = "usage_usagerecord"


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _plan_nodes(child)


def explain(sql: str) -> list[tuple[str, str]]:
    """(node type, relation) of every scan node in the plan of `sql`."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return [(n["Node Type"], n.get("Relation Name", "")) for n in _plan_nodes(plan[0]["Plan"])
            if "Scan" in n["Node Type"]]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--budget-ms", type=float, default=300.0, help="p95 that a case must stay under")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("run this against PostgreSQL (DATABASE_URL)", file=sys.stderr)
        return 2
    setup_test_environment()
    settings.DEBUG = False
    user, _ = get_user_model().objects.get_or_create(username="dash-bench", defaults={"is_staff": True,
                                                                                      "is_superuser": True})
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {RAW_TABLE} LIMIT 100000000) t")
        raw_rows = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM usage_usagerollup")
        hourly_rows = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM usage_usagedailyrollup")
        daily_rows = cursor.fetchone()[0]
        cursor.execute("SELECT count(DISTINCT key_id) FROM usage_usagedailyrollup")
        keys = cursor.fetchone()[0]
        cursor.execute("SELECT key_id, sum(requests) FROM usage_usagedailyrollup GROUP BY key_id "
                       "ORDER BY 2 DESC LIMIT 1")
        busiest, busiest_requests = cursor.fetchone()
    print(f"raw usage rows: {raw_rows:,}; hourly rollups: {hourly_rows:,}; daily rollups: {daily_rows:,}; "
          f"keys with usage: {keys:,}; busiest key #{busiest} with {busiest_requests:,} requests\n")

    cases = []
    for label in ("24h", "30d", "90d"):
        cases.append((f"all keys, {label}", f"/dashboards/?range={label}"))
        cases.append((f"busiest key (staff filter), {label}", f"/dashboards/?range={label}&key={busiest}"))
        cases.append((f"busiest key (key page), {label}", f"/dashboards/keys/{busiest}/?range={label}"))

    rows, failed = [], False
    for name, url in cases:
        response = client.get(url)  # warm-up
        assert response.status_code == 200, (url, response.status_code)
        times = []
        for _ in range(args.loads):
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200
        with CaptureQueriesContext(connection) as ctx:
            client.get(url)
        scans: dict[str, set[str]] = {}
        raw_seq = False
        for q in ctx.captured_queries:
            sql = q["sql"]
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            for node, relation in explain(sql):
                if relation.startswith(RAW_TABLE + "_"):  # a month partition (PostgreSQL): count it as the table
                    relation = RAW_TABLE
                if relation:
                    scans.setdefault(relation, set()).add(node)
                if node == "Seq Scan" and relation == RAW_TABLE:
                    raw_seq = True
        p95 = percentile(times, 95)
        ok = p95 < args.budget_ms and not raw_seq
        failed |= not ok
        raw_access = ", ".join(sorted(scans.get(RAW_TABLE, {"not read"})))
        others = "; ".join(f"{rel.removeprefix('usage_')}: {', '.join(sorted(nodes))}"
                           for rel, nodes in sorted(scans.items())
                           if rel.startswith("usage_usage") and rel != RAW_TABLE)
        rows.append(f"| {name} | {statistics.median(times):.0f} | {p95:.0f} | {max(times):.0f} | "
                    f"{len(ctx.captured_queries)} | {raw_access} | {others} | {'yes' if ok else 'NO'} |")
        print(f"{name}: p95 {p95:.0f} ms", file=sys.stderr)

    print(f"| page | p50 ms | p95 ms | max ms | queries | raw usage rows read by | rollups read by "
          f"| p95 < {args.budget_ms:.0f} ms, no seq scan of raw rows |")
    print("|---|---:|---:|---:|---:|---|---|---|")
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
