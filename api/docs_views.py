"""GET /docs: Swagger UI for the `/v1` surface, from vendored assets (intranets have no CDN)."""

from __future__ import annotations

import mimetypes
from functools import lru_cache
from pathlib import Path

import drf_spectacular_sidecar
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

ASSET_DIR = Path(drf_spectacular_sidecar.__file__).parent / "static/drf_spectacular_sidecar/swagger-ui-dist"
ASSETS = {"swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OCI GenAI gateway API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"><link rel="icon" href="/docs/assets/favicon-32x32.png">
</head><body><div id="ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "%s/openapi.json", dom_id: "#ui"});</script>
<noscript>The OpenAPI description is at <a href="%s/openapi.json">%s/openapi.json</a>.</noscript>
</body></html>"""


@require_GET
def docs_page(request):
    from django.conf import settings

    prefix = settings.API_ROUTE_PREFIX.rstrip("/")
    return HttpResponse(PAGE % (prefix, prefix, prefix))


@lru_cache(maxsize=len(ASSETS))
def _asset(name: str) -> bytes:
    return (ASSET_DIR / name).read_bytes()


@require_GET
def docs_asset(request, name: str):
    if name not in ASSETS:
        raise Http404
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = HttpResponse(_asset(name), content_type=content_type)
    response["Cache-Control"] = "public, max-age=86400"
    return response
