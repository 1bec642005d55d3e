"""The routing layer's cost per request, with catalogs of 1, 10 and 50 deployments.

    python -m bench.routing_bench [--n 20000] [--rounds 5]

In-process, no network: the catalog is built by the real loader from a throw-away SQLite database (the
bench never touches DATABASE_URL's database, and runs without Redis), then each simulated request runs
the gateway's own code for

- resolve: `handlers.resolve_model` (cached catalog read, lookup of the public name, key and capability
  checks),
- choose: what `chat._obtain_from` does before its first upstream call (the shared-breaker refresh, a
  no-op without Redis, and `chat._route` → `routing.candidates`: priority groups, strategy order,
  breakers),
- settle: taking and releasing the deployment's slot and `routing.record_result` (breaker, error window,
  latency average),

and prints p50 / p99 in microseconds for each shape: N models of one deployment each (the catalog grows,
the request's model does not), and one model routed over N deployments (the request's model grows).
Shapes are measured in turns over several rounds, so a busy machine spreads its noise over all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
_DB_DIR = tempfile.mkdtemp(prefix="routing-bench-")
atexit.register(shutil.rmtree, _DB_DIR, ignore_errors=True)
os.environ["DATABASE_URL"] = f"sqlite:///{_DB_DIR}/routing_bench.sqlite3"  # never the real database
os.environ["REDIS_URL"] = ""
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + "x" * 40)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from api import chat, routing  # noqa: E402
from api.context import CallContext  # noqa: E402
from api.handlers import resolve_model  # noqa: E402
from api.http import ApiRequest  # noqa: E402
from models_registry import bus  # noqa: E402
from models_registry.catalog import get_catalog  # noqa: E402
from models_registry.models import Deployment, PublicModel, Route  # noqa: E402
from usage.auth import KeyPrincipal  # noqa: E402

REGIONS = ("us-chicago-1", "us-ashburn-1", "us-phoenix-1", "eu-frankfurt-1", "uk-london-1", "ap-osaka-1",
           "sa-saopaulo-1", "ca-toronto-1", "ap-tokyo-1", "eu-paris-1")
COMPARTMENT = "ocid1.compartment.oc1..routingbench"

# (label, models, deployments per model): the table's rows, in order.
SHAPES = [
    ("1 model, 1 deployment", 1, 1),
    ("10 models of 1 deployment", 10, 1),
    ("50 models of 1 deployment", 50, 1),
    ("1 model over 10 deployments", 1, 10),
    ("1 model over 50 deployments", 1, 50),
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seed() -> None:
    """Every shape's rows at once, each shape's public models disabled until its turn."""
    for index, (_label, models, per_model) in enumerate(SHAPES):
        for m in range(models):
            pm = PublicModel.objects.create(name=f"s{index}-model-{m}", enabled=False)
            for r in range(per_model):
                d = Deployment.objects.create(
                    name=f"s{index}-m{m}-d{r}", kind="ondemand", region=REGIONS[r % len(REGIONS)],
                    compartment_id=COMPARTMENT, model_id="meta.llama-3.3-70b-instruct", api_format="GENERIC")
                Route.objects.create(public_model=pm, deployment=d, priority=0, weight=1)


async def use_shape(index: int) -> list[str]:
    """Enable only this shape's models; reload the catalog (outside the timings). Its model names."""
    from asgiref.sync import sync_to_async

    def switch():
        PublicModel.objects.exclude(name__startswith=f"s{index}-").update(enabled=False)
        PublicModel.objects.filter(name__startswith=f"s{index}-").update(enabled=True)
        bus.bump("catalog")

    await sync_to_async(switch)()
    catalog = await get_catalog()
    _label, models, per_model = SHAPES[index]
    assert len(catalog.models) == models and sum(len(e.deployments) for e in catalog.models.values()) == (
        models * per_model)
    return sorted(catalog.models)


def principal() -> KeyPrincipal:
    return KeyPrincipal(id=1, name="bench", prefix="sk-bench", team_id=None, team_name="",
                        allowed_models=frozenset(), team_allowed_models=frozenset(), metadata={},
                        expires_at=None, digest="", previous_valid_until=None)


async def measure(names: list[str], n: int, timings: dict[str, list[float]]) -> None:
    rng = random.Random(7)
    key = principal()
    request = ApiRequest("POST", "/v1/chat/completions", {}, b"{}", "127.0.0.1", "BENCH")
    clock = time.perf_counter_ns
    for i in range(n):
        name = names[rng.randrange(len(names))]
        ctx = CallContext(request=request, principal=key, endpoint="chat.completions")
        t0 = clock()
        entry = await resolve_model(ctx, name, "chat")
        t1 = clock()
        candidates = chat._route(ctx, entry)
        await routing.refresh_shared_throttled([d.name for d in candidates])
        d = candidates[0]
        t2 = clock()
        slot = routing.Slot(d)
        await slot.__aenter__()
        routing.record_result(d, ok=True, latency_ms=5.0 + (i % 7))
        slot.release()
        t3 = clock()
        timings["resolve"].append((t1 - t0) / 1000)
        timings["choose"].append((t2 - t1) / 1000)
        timings["settle"].append((t3 - t2) / 1000)
        timings["total"].append((t3 - t0) / 1000)


async def run(n: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    results = {label: {"resolve": [], "choose": [], "settle": [], "total": []} for label, _m, _d in SHAPES}
    per_round = max(1, n // rounds)
    for _round in range(rounds):
        for index, (label, _m, _d) in enumerate(SHAPES):
            names = await use_shape(index)
            routing.reset_state()
            await measure(names, min(500, per_round), {k: [] for k in results[label]})  # warm-up, not kept
            await measure(names, per_round, results[label])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="requests measured per shape")
    parser.add_argument("--rounds", type=int, default=5, help="turns over the shapes")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    seed()
    results = asyncio.run(run(args.n, args.rounds))
    print(f"Routing layer per request, {args.n} requests per shape over {args.rounds} rounds "
          f"(Python {sys.version.split()[0]}, weighted strategy, no Redis), all figures in µs:\n")
    print("| catalog | resolve p50 | resolve p99 | choose p50 | choose p99 | settle p50 | settle p99 "
          "| total p50 | total p99 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, steps in results.items():
        cells = []
        for step in ("resolve", "choose", "settle", "total"):
            cells += [f"{statistics.median(steps[step]):.1f}", f"{pct(steps[step], 0.99):.1f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
