"""Container health check: GET /health on the local port."""

import os
import sys
import urllib.request

try:
    urllib.request.urlopen(f"http://127.0.0.1:{os.environ.get('PORT', '8088')}/health", timeout=2)
except Exception:
    sys.exit(1)
