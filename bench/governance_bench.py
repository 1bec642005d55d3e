"""What governance costs per request, measured in-process: key lookup, limit reserve/settle, usage hand-off.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gateway_bench REDIS_URL=redis://127.0.0.1:6379/1 \
        python bench/governance_bench.py [--n 5000] [--rows 200000]

Prints p50/p99 in microseconds for each step with governance on, against the same request path with the
steps skipped (governance off), and the usage rows per second the batch writer sustains.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + "x" * 40)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from api.context import CallContext  # noqa: E402
from api.http import ApiRequest  # noqa: E402
from usage.auth import authenticate  # noqa: E402
from usage.keys import api_key_create  # noqa: E402
from usage.models import ApiKey, UsageRecord  # noqa: E402
from usage.recorder import UsageEvent, recorder  # noqa: E402
from usage.writer import write_batch  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def per_request(secret: str, n: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"auth": [], "limits (reserve+settle)": [], "usage hand-off": [], "all": []}
    await authenticate(secret)  # warm the key cache
    for _ in range(n):
        t0 = time.perf_counter()
        principal = await authenticate(secret)
        t1 = time.perf_counter()
        request = ApiRequest("POST", "/v1/chat/completions", {"user-agent": "bench"}, b"{}", "127.0.0.1",
                             uuid.uuid4().hex.upper())
        ctx = CallContext(request=request, principal=principal, endpoint="chat.completions")
        ctx.public_model = "bench-model"
        await ctx.admit(max_output=256)
        ctx.usage = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
        ctx.usage_source = "upstream"
        t2 = time.perf_counter()
        await ctx.record_durable()  # settles the reservation and hands the record over
        t3 = time.perf_counter()
        timings["auth"].append((t1 - t0) * 1e6)
        timings["limits (reserve+settle)"].append((t2 - t1) * 1e6)
        timings["usage hand-off"].append((t3 - t2) * 1e6)
        timings["all"].append((t3 - t0) * 1e6)
    return timings


def writer_rows_per_second(rows: int) -> float:
    batch = 2000
    started = time.perf_counter()
    for i in range(0, rows, batch):
        write_batch([UsageEvent(request_id=uuid.uuid4().hex, endpoint="chat.completions", status=200, key_id=1,
                                public_model=f"m{j % 5}", region="us-chicago-1", prompt_tokens=10,
                                completion_tokens=20, total_tokens=30, usage_source="upstream").to_row()
                     for j in range(min(batch, rows - i))])
    return rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    _key, secret = api_key_create(name=f"gov-bench-{uuid.uuid4().hex[:6]}")
    ApiKey.objects.filter(name__startswith="gov-bench").update(rpm_limit=10**6, tpm_limit=10**9, parallel_limit=10**5,
                                                                token_budget=2 * 10**9)
    timings = asyncio.run(per_request(secret, args.n))
    recorder.flush()
    backend = "Redis" if settings.REDIS_URL else settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"Governance per request, {args.n} requests, limits and usage on {backend} "
          f"(database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}):\n")
    print("| step | p50 µs | p99 µs |\n|---|---|---|")
    for name, values in timings.items():
        print(f"| {name} | {statistics.median(values):.0f} | {pct(values, 0.99):.0f} |")
    before = UsageRecord.objects.count()
    rate = writer_rows_per_second(args.rows)
    print(f"\nUsage writer: {rate:,.0f} rows/s into the database (batches of 2,000 with rollup upserts; "
          f"{UsageRecord.objects.count() - before:,} rows written).")


if __name__ == "__main__":
    main()
