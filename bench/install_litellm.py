"""Install LiteLLM proxy 1.109.1 into a throwaway virtualenv (var/bench/litellm-venv), offline-friendly.

Its metadata pins `certifi>=2026.10.19` and `litellm-proxy-extras==0.4.113`, which the package index
here does not have; so it installs with --no-deps plus its listed core and proxy dependencies, with
those two relaxed (seeds-and-peers reference §9.4).

    python bench/install_litellm.py [--venv var/bench/litellm-venv]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "1.109.1"
RELAX = {"certifi": "certifi", "litellm-proxy-extras": "litellm-proxy-extras==0.4.110"}
EXTRA = ["expression", "soundfile"]  # the proxy imports them


def requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(f"litellm-{VERSION}.dist-info/METADATA").decode()
    out = []
    for line in meta.splitlines():
        if not line.startswith("Requires-Dist: "):
            continue
        spec = line[len("Requires-Dist: ") :]
        requirement, _, marker = spec.partition(";")
        marker = marker.strip()
        if "extra ==" in marker and "extra == 'proxy'" not in marker:
            continue
        marker = re.sub(r"\s*and extra == 'proxy'|extra == 'proxy'\s*(and)?", "", marker).strip()
        name = re.split(r"[<>=!\[ ;]", requirement.strip())[0].lower()
        requirement = RELAX.get(name, requirement.strip())
        out.append(f"{requirement}; {marker}" if marker else requirement)
    return out + EXTRA


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--venv", default="var/bench/litellm-venv")
    args = parser.parse_args()
    venv = Path(args.venv)
    if (venv / "bin" / "litellm").exists():
        print(f"LiteLLM already installed in {venv}")
        return 0
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([*pip[:-2], "download", "-q", "--no-deps", "-d", tmp, f"litellm=={VERSION}"], check=True)
        wheel = next(Path(tmp).glob("litellm-*.whl"))
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("\n".join(requirements(wheel)) + "\n")
        subprocess.run([*pip, "-r", str(reqs)], check=True)
        subprocess.run([*pip, "--no-deps", str(wheel)], check=True)
    print(f"LiteLLM {VERSION} installed in {venv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
