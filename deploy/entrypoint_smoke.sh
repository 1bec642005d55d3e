#!/usr/bin/env bash
# Runs deploy/entrypoint.sh on the host the way the image does (production settings, an unprivileged
# user, SQLite in a fresh directory, OCI credentials from a generated config) and checks /health.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
work="$(mktemp -d)"
chmod 755 "$work"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
.venv/bin/python -c "from oci_emulator.credentials import generate_credentials as g; g('$work/oci')" >/dev/null
chmod -R a+rX "$work/oci" "$root"
# The unprivileged user must reach the interpreter and the checkout: grant traverse (not list) on any
# parent directory that denies it (pyenv under /root, a mktemp checkout directory).
traversable() {
  local p="$1"
  while [ "$p" != "/" ]; do
    p="$(dirname "$p")"
    case "$(stat -c %A "$p")" in *x|*t) ;; *) chmod o+x "$p" ;; esac
  done
}
traversable "$(readlink -f "$root/.venv/bin/python")"
traversable "$root"
mkdir -p "$work/var" && chown -R 65534:65534 "$work/var"
port=$(.venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
env -i PATH="$PATH" HOME="$work" PYTHON="$root/.venv/bin/python" GATEWAY_PRODUCTION=true \
  DJANGO_SECRET_KEY="ci-$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')" \
  GATEWAY_VAR_DIR="$work/var" OCI_CONFIG_FILE="$work/oci/config" HOST=127.0.0.1 PORT="$port" WORKERS=1 \
  setpriv --reuid=65534 --regid=65534 --clear-groups "$root/deploy/entrypoint.sh" >"$work/out.log" 2>&1 &
pid=$!
for _ in $(seq 60); do
  if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
    echo "entrypoint serves /health as uid 65534"
    exit 0
  fi
  sleep 0.5
done
echo "entrypoint did not serve /health; its output:"
cat "$work/out.log"
exit 1
