"""`make bench`: direct / floor proxy / gateway / LiteLLM side by side, interleaved, in one run.

    python -m bench.run [--seconds 10] [--rounds 2] [--soak 600] [--no-litellm] [--write docs/benchmarks.md]

Processes: the OCI emulator and the load generator share CPU 1; the proxy under test (floor, gateway or
LiteLLM, one worker each) runs alone on CPU 0. Governance is on for the gateway: PostgreSQL, Redis,
an API key with limits, usage recording. Figures are medians over the rounds; ratios are taken
within this one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from bench.load import StreamResult, WrkResult, stream_requests, wrk
from bench.procs import Service, free_port, rss_mib, tree_cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "var" / "bench"
PY = sys.executable
CHAT_MODEL = "meta.llama-3.3-70b-instruct"
EMBED_MODEL = "cohere.embed-english-v3.0"
BENCH_DB = "gateway_bench"
PROXY_CPU, LOAD_CPU = "0", "1"


@dataclass
class Target:
    name: str
    service: Service | None
    base: str  # URL prefix for OpenAI paths ("" for direct)
    headers: dict = field(default_factory=dict)


def sh(*argv, env=None, check=True) -> str:
    return subprocess.run(argv, env=env, check=check, capture_output=True, text=True, cwd=ROOT).stdout


# --- bodies ----------------------------------------------------------------------------------------
def openai_chat(stream: bool, words: int | None = None) -> bytes:
    text = "Say hello to the benchmark" + (f" [[emulator: words={words}]]" if words else "")
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 512}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return orjson.dumps(body)


def oci_chat(compartment: str, stream: bool, words: int | None = None) -> bytes:
    text = "Say hello to the benchmark" + (f" [[emulator: words={words}]]" if words else "")
    request = {
        "apiFormat": "GENERIC",
        "messages": [{"role": "USER", "content": [{"type": "TEXT", "text": text}]}],
        "maxTokens": 512,
    }
    if stream:
        request.update(isStream=True, streamOptions={"isIncludeUsage": True})
    return orjson.dumps(
        {
            "compartmentId": compartment,
            "servingMode": {"servingType": "ON_DEMAND", "modelId": CHAT_MODEL},
            "chatRequest": request,
        }
    )


INPUTS = [f"document {i} about gateways, embeddings and the weather in city {i}" for i in range(96)]


def openai_embed() -> bytes:
    return orjson.dumps({"model": EMBED_MODEL, "input": INPUTS, "encoding_format": "float"})


def oci_embed(compartment: str) -> bytes:
    return orjson.dumps(
        {
            "compartmentId": compartment,
            "servingMode": {"servingType": "ON_DEMAND", "modelId": EMBED_MODEL},
            "inputs": INPUTS,
            "truncate": "END",
        }
    )


# --- set-up --------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.services: list[Service] = []
        WORK.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        from oci_emulator.credentials import generate_credentials, load_credentials

        cfg = WORK / "oci" / "config"
        self.creds = load_credentials(str(cfg)) if cfg.exists() else generate_credentials(str(WORK / "oci"))
        self.compartment = self.creds.compartment_id
        port = free_port()
        self.emulator = self._spawn(
            "emulator",
            [PY, "-m", "oci_emulator", "--port", str(port), "--config", self.creds.config_file],
            port,
            cpu=LOAD_CPU,
        )
        self.targets = [Target("direct", None, "")]
        port = free_port()
        floor = self._spawn(
            "floor",
            [
                PY,
                "bench/floor_proxy.py",
                "--port",
                str(port),
                "--upstream",
                self.emulator.url,
                "--config",
                self.creds.config_file,
                "--compartment",
                self.compartment,
            ],
            port,
        )
        self.targets.append(Target("floor", floor, floor.url + "/v1"))
        self.targets.append(self._start_gateway(self.args.serving, "gateway"))
        if self.args.compare_serving:
            other = "django" if self.args.serving == "asgi" else "asgi"
            self.targets.append(self._start_gateway(other, f"gateway-{other}"))
        if not self.args.no_litellm:
            litellm = self._start_litellm()
            if litellm:
                self.targets.append(litellm)

    def _spawn(self, name, argv, port, cpu=PROXY_CPU, env=None) -> Service:
        service = Service(name, argv, port, env=env, cpu=cpu, cwd=str(ROOT), log=WORK / f"{name}.log")
        self.services.append(service)
        return service

    def _gateway_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OCI_", "GATEWAY_", "DJANGO_"))}
        env.update(
            {
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
                "REDIS_URL": "redis://127.0.0.1:6379/1",
                "DJANGO_SECRET_KEY": "bench-" + "x" * 40,
                "GATEWAY_PRODUCTION": "true",
                "GATEWAY_VAR_DIR": str(WORK / "gateway-var"),
                "LOG_LEVEL": "WARNING",
                "WORKERS": "1",
                "OCI_CONFIG_FILE": self.creds.config_file,
                "OCI_GENAI_ENDPOINT": self.emulator.url,
                "OCI_REGION": "us-chicago-1",
                "OCI_COMPARTMENT": self.compartment,
            }
        )
        return env

    def _start_gateway(self, serving: str, name: str) -> Target:
        env = {**self._gateway_env(), "API_SERVING": serving}
        exists = sh(
            "psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{BENCH_DB}'"
        ).strip()
        if not exists:
            sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {BENCH_DB}")
        sh(PY, "manage.py", "migrate", "--noinput", env=env)
        models = WORK / "models.yaml"
        models.write_text(f"""- region: us-chicago-1
  compartment_id: {self.compartment}
  models:
    ondemand: [{{name: {CHAT_MODEL}, model_id: {CHAT_MODEL}}}]
    embedding: [{{name: {EMBED_MODEL}, model_id: {EMBED_MODEL}}}]
""")
        sh(PY, "manage.py", "import_models", str(models), env=env)
        key = sh(PY, "manage.py", "create_api_key", f"bench-{uuid.uuid4().hex[:6]}", env=env).strip().splitlines()[-1]
        self._apply_limits(env, key)
        port = free_port()
        service = self._spawn(name, [PY, "manage.py", "serve", "--port", str(port), "--workers", "1"], port, env=env)
        return Target(name, service, service.url + "/v1", {"Authorization": f"Bearer {key}"})

    def _apply_limits(self, env: dict, key: str) -> None:
        """Governance on: give the key generous limits, so the limiter runs on every request."""
        code = (
            "import django,sys; django.setup();"
            "from usage.models import ApiKey; from usage.keys import lookup_hash;"
            "k=ApiKey.objects.get(lookup_hash=lookup_hash(sys.argv[1]));"
            "fields={f.name for f in ApiKey._meta.get_fields()};"
            "vals={'rpm_limit':10**6,'tpm_limit':10**9,'parallel_limit':100000,'token_budget':2*10**9};"
            "[setattr(k,f,v) for f,v in vals.items() if f in fields]; k.save(); print(sorted(fields & set(vals)))"
        )
        env = {**env, "DJANGO_SETTINGS_MODULE": "gateway_project.settings"}
        result = subprocess.run([PY, "-c", code, key], env=env, capture_output=True, text=True, cwd=ROOT)
        if result.returncode:
            print(f"could not set the key's limits: {result.stderr[-800:]}", file=sys.stderr)
        self.limits_applied = result.stdout.strip() or "none"

    def _start_litellm(self) -> Target | None:
        binary = WORK / "litellm-venv" / "bin" / "litellm"
        if not binary.exists():
            print("LiteLLM is not installed (python bench/install_litellm.py); skipping it", file=sys.stderr)
            return None
        config = WORK / "litellm.yaml"
        config.write_text(f"""model_list:
  - model_name: {CHAT_MODEL}
    litellm_params: {{model: oci/{CHAT_MODEL}, api_base: os.environ/FAKE_OCI_URL}}
  - model_name: {EMBED_MODEL}
    litellm_params: {{model: oci/{EMBED_MODEL}, api_base: os.environ/FAKE_OCI_URL}}
litellm_settings:
  drop_params: true
general_settings:
  master_key: sk-bench-key
""")
        oci_cfg = self.creds
        env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "HF_HUB_OFFLINE": "1",
            "FAKE_OCI_URL": self.emulator.url,
            "OCI_USER": oci_cfg.user,
            "OCI_FINGERPRINT": oci_cfg.fingerprint,
            "OCI_TENANCY": oci_cfg.tenancy,
            "OCI_KEY_FILE": oci_cfg.key_file,
            "OCI_COMPARTMENT_ID": self.compartment,
            "LITELLM_LOG": "ERROR",
        }
        port = free_port()
        try:
            service = self._spawn(
                "litellm",
                [
                    str(binary),
                    "--config",
                    str(config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--num_workers",
                    "1",
                ],
                port,
                env=env,
            )
        except RuntimeError as exc:
            print(f"LiteLLM did not start ({exc}); see {WORK / 'litellm.log'}", file=sys.stderr)
            return None
        return Target("litellm", service, service.url + "/v1", {"Authorization": "Bearer sk-bench-key"})

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    # --- requests -------------------------------------------------------------------------------
    def signed(self, path: str, body: bytes) -> dict:
        from oci_emulator.server import EmulatorClient

        client = EmulatorClient(self.emulator.url, config_file=self.creds.config_file)
        import requests

        prepared = requests.Request(
            "POST", self.emulator.url + path, data=body, headers={"content-type": "application/json"}
        ).prepare()
        client.signer()(prepared)
        return {k: v for k, v in prepared.headers.items()}

    def request_for(self, target: Target, scenario: str, words: int = 200) -> tuple[str, bytes, dict]:
        if scenario == "embed":
            if target.name == "direct":
                body = oci_embed(self.compartment)
                return (
                    self.emulator.url + "/20231130/actions/embedText",
                    body,
                    self.signed("/20231130/actions/embedText", body),
                )
            return target.base + "/embeddings", openai_embed(), {**target.headers, "content-type": "application/json"}
        stream = scenario == "stream"
        words = words if stream else None
        if target.name == "direct":
            body = oci_chat(self.compartment, stream, words)
            return self.emulator.url + "/20231130/actions/chat", body, self.signed("/20231130/actions/chat", body)
        return (
            target.base + "/chat/completions",
            openai_chat(stream, words),
            {**target.headers, "content-type": "application/json"},
        )

    def set_latency(self, ms: int) -> None:
        httpx.post(self.emulator.url + "/_emulator/faults", json={"latency_ms": ms} if ms else {})

    def check(self, target: Target) -> None:
        url, body, headers = self.request_for(target, "chat")
        response = httpx.post(url, content=body, headers=headers, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"{target.name} answered {response.status_code}: {response.text[:300]}")


# --- scenarios -----------------------------------------------------------------------------------
def run_wrk(bench: Bench, target: Target, scenario: str, connections: int, seconds: int) -> WrkResult:
    url, body, headers = bench.request_for(target, scenario)
    return wrk(url, body, headers, connections=connections, seconds=seconds, cpu=LOAD_CPU)


def run_stream(bench: Bench, target: Target, count: int) -> tuple[StreamResult, float, float]:
    """`count` streams of 200 events: (result, CPU µs per chunk, relay CPU µs per extra chunk).

    The CPU per chunk is the process tree's CPU over the streams divided by their chunks, each request's own
    cost included. The relay cost is the marginal one: as many 2-event streams are run too, and the difference
    in CPU is divided by the difference in chunks, so the per-request cost cancels out.
    """
    result, cpu = _streams(bench, target, count, 200)
    short, short_cpu = _streams(bench, target, count, 2)
    per_chunk = cpu / result.chunks * 1e6 if result.chunks else float("nan")
    extra = result.chunks - short.chunks
    relay = (cpu - short_cpu) / extra * 1e6 if extra > 0 else float("nan")
    return result, per_chunk, relay


def _streams(bench: Bench, target: Target, count: int, words: int) -> tuple[StreamResult, float]:
    url, body, headers = bench.request_for(target, "stream", words)
    pid = target.service.pid if target.service else bench.emulator.pid
    before = tree_cpu_seconds(pid)
    if target.name == "direct":
        result = stream_requests(url, body, lambda: bench.signed("/20231130/actions/chat", body), count=count,
                                 cpu=LOAD_CPU)
    else:
        result = stream_requests(url, body, lambda: headers, count=count, cpu=LOAD_CPU)
    return result, tree_cpu_seconds(pid) - before


def median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--streams", type=int, default=30)
    parser.add_argument("--soak", type=int, default=600, help="soak seconds (0: skip)")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--serving", default="asgi", choices=("asgi", "django"), help="the gateway's /v1 adapter")
    parser.add_argument("--compare-serving", action="store_true", help="also run the gateway with the other one")
    parser.add_argument("--write", default="docs/benchmarks.md")
    args = parser.parse_args()
    bench = Bench(args)
    results: dict = {}
    try:
        bench.start()
        for target in bench.targets:
            bench.check(target)
        for latency in (0, 50):
            bench.set_latency(latency)
            for round_ in range(args.rounds):
                for target in bench.targets:  # interleaved: every target once per round
                    for label, connections in (("c1", 1), ("c64", 64)):
                        r = run_wrk(bench, target, "chat", connections, args.seconds)
                        results.setdefault((latency, label, target.name), []).append(r)
                    if latency == 0:
                        r = run_wrk(bench, target, "embed", 16, args.seconds)
                        results.setdefault((0, "embed", target.name), []).append(r)
                        s = run_stream(bench, target, args.streams)
                        results.setdefault((0, "stream", target.name), []).append(s)
                    print(f"latency {latency} ms, round {round_ + 1}: {target.name} done", file=sys.stderr)
        bench.set_latency(0)
        soak = soak_gateway(bench, args.soak) if args.soak else None
    finally:
        bench.stop()
    report = render(bench, results, soak, args)
    print(report)
    if args.write:
        write_report(Path(ROOT / args.write), report)
    return 0


def soak_gateway(bench: Bench, seconds: int) -> dict:
    gateway = next(t for t in bench.targets if t.name == "gateway")
    url, body, headers = bench.request_for(gateway, "chat")
    samples = []
    lua_proc = None
    import threading

    done = threading.Event()

    def sample():
        start = time.monotonic()
        while not done.is_set():
            samples.append((round(time.monotonic() - start), rss_mib(gateway.service.pid)))
            done.wait(10)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    result = wrk(url, body, headers, connections=16, seconds=seconds, cpu=LOAD_CPU)
    done.set()
    thread.join()
    del lua_proc
    at = dict(samples)
    rss2 = next((v for t, v in samples if t >= 120), samples[0][1])
    rss_end = samples[-1][1]
    return {
        "seconds": seconds,
        "requests": result.requests,
        "errors": result.errors,
        "rps": result.rps,
        "rss_start": samples[0][1],
        "rss_2min": rss2,
        "rss_end": rss_end,
        "growth_pct": (rss_end - rss2) / rss2 * 100 if rss2 else float("nan"),
        "samples": len(at),
    }


def render(bench: Bench, results: dict, soak: dict | None, args) -> str:
    names = [t.name for t in bench.targets]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = sh(
        PY,
        "-c",
        "import django,aiohttp,uvicorn,oci;print(django.__version__,aiohttp.__version__,"
        "uvicorn.__version__,oci.__version__)",
    ).split()
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores ({cpu}), Python "
        f"{platform.python_version()}, Django {versions[0]}, aiohttp {versions[1]}, uvicorn {versions[2]}, "
        f"oci {versions[3]}. Command: `python -m bench.run --seconds {args.seconds} --rounds {args.rounds} "
        f"--streams {args.streams} --soak {args.soak}{' --compare-serving' if args.compare_serving else ''}"
        f"{' --no-litellm' if args.no_litellm else ''}` (`make bench` installs LiteLLM first). "
        f"Proxy under test on CPU 0, emulator and load generator "
        f"(wrk 4.1, one thread) on CPU 1; one worker process each; medians over {args.rounds} interleaved rounds.",
        f"Gateway governance: PostgreSQL + Redis, API key auth, usage recording; key limits set: "
        f"{getattr(bench, 'limits_applied', 'n/a')}.",
        "",
        "| scenario | metric | " + " | ".join(names) + " | gateway ÷ floor | gateway ÷ LiteLLM |",
        "|---|---|" + "---|" * len(names) + "---|---|",
    ]

    def row(scenario, metric, key, getter, better="lower", fmt="{:.2f}"):
        values = {n: median([getter(r) for r in results.get((*key, n), [])]) for n in names}
        cells = [fmt.format(values[n]) if values[n] == values[n] else "–" for n in names]
        g, f, ll = values.get("gateway"), values.get("floor"), values.get("litellm")

        def ratio(a, b):
            return f"{a / b:.2f}" if a and b and a == a and b == b else "–"

        lines.append(f"| {scenario} | {metric} | " + " | ".join(cells) + f" | {ratio(g, f)} | {ratio(g, ll)} |")

    for latency in (0, 50):
        tag = f"chat, upstream {latency} ms"
        row(f"{tag}, c=1", "p50 latency ms", (latency, "c1"), lambda r: r.p50_ms)
        row(f"{tag}, c=1", "p99 latency ms", (latency, "c1"), lambda r: r.p99_ms)
        row(f"{tag}, c=64", "requests/s", (latency, "c64"), lambda r: r.rps, fmt="{:.0f}")
        row(f"{tag}, c=64", "p50 latency ms", (latency, "c64"), lambda r: r.p50_ms)
        row(f"{tag}, c=64", "p99 latency ms", (latency, "c64"), lambda r: r.p99_ms)
        row(f"{tag}, c=64", "errors", (latency, "c64"), lambda r: r.errors, fmt="{:.0f}")
    row("embeddings 96 inputs, c=16", "requests/s", (0, "embed"), lambda r: r.rps, fmt="{:.0f}")
    row("embeddings 96 inputs, c=16", "p50 latency ms", (0, "embed"), lambda r: r.p50_ms)
    row("embeddings 96 inputs, c=16", "errors", (0, "embed"), lambda r: r.errors, fmt="{:.0f}")
    row("stream 200 events, c=1", "TTFT p50 ms", (0, "stream"), lambda r: r[0].ttft_p50)
    row("stream 200 events, c=1", "last token p50 ms", (0, "stream"), lambda r: r[0].ttlt_p50)
    row("stream 200 events, c=1", "CPU µs per chunk", (0, "stream"), lambda r: r[1], fmt="{:.1f}")
    row("stream 200 events, c=1", "relay CPU µs per extra chunk", (0, "stream"), lambda r: r[2], fmt="{:.1f}")
    row("stream 200 events, c=1", "errors", (0, "stream"), lambda r: r[0].errors, fmt="{:.0f}")
    added = []
    for latency in (0,):
        d = median([r.p50_ms for r in results.get((latency, "c1", "direct"), [])])
        for n in names[1:]:
            p50 = median([r.p50_ms for r in results.get((latency, "c1", n), [])])
            p99 = median([r.p99_ms for r in results.get((latency, "c1", n), [])])
            d99 = median([r.p99_ms for r in results.get((latency, "c1", "direct"), [])])
            added.append(f"{n}: +{p50 - d:.2f} ms p50, +{p99 - d99:.2f} ms p99")
    lines += ["", "Added latency over direct (non-streaming, c=1, 0 ms upstream): " + "; ".join(added) + "."]
    if soak:
        lines.append(
            f"Soak ({soak['seconds']} s, c=16, gateway): {soak['requests']} requests, {soak['errors']} errors, "
            f"{soak['rps']:.0f} req/s; RSS {soak['rss_start']:.0f} MiB at start, {soak['rss_2min']:.0f} MiB at "
            f"minute 2, {soak['rss_end']:.0f} MiB at the end ({soak['growth_pct']:+.1f}% after minute 2)."
        )
    return "\n".join(lines)


START, END = "<!-- bench:run:start -->", "<!-- bench:run:end -->"


def write_report(path: Path, report: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{START}\n{report}\n{END}"
    if START in text and END in text:
        text = text.split(START)[0] + block + text.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Gateway side by side (`make bench`)\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
