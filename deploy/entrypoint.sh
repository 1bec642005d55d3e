#!/bin/sh
# Container entrypoint: apply migrations, then serve. Extra arguments go to `manage.py serve`.
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
"$PYTHON" manage.py migrate --noinput
exec "$PYTHON" manage.py serve "$@"
