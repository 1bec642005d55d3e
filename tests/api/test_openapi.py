"""/v1/openapi.json (generated from the request models, valid OpenAPI 3.1) and the /docs page."""

import httpx
import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.smoke


def test_openapi_document_is_valid_and_complete(gateway):
    response = httpx.get(gateway.api_base + "/openapi.json")  # no key needed
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert {"/chat/completions", "/embeddings", "/rerank", "/completions", "/models", "/usage"} <= set(
        document["paths"]
    )
    chat = document["components"]["schemas"]["ChatCompletionRequest"]
    assert {"model", "messages", "tools", "stream_options"} <= set(chat["properties"])


def test_docs_page_uses_vendored_assets(gateway):
    page = httpx.get(gateway.base_url + "/docs")
    assert page.status_code == 200 and "/v1/openapi.json" in page.text
    assert "http" not in page.text.split("<body>")[1].replace("/v1/openapi.json", "")  # no CDN
    asset = httpx.get(gateway.base_url + "/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    assert httpx.get(gateway.base_url + "/docs/assets/..%2Fsettings.py").status_code == 404
