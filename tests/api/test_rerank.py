"""POST /v1/rerank (and /rerank) over plain HTTP, in the Cohere/Jina shape LiteLLM and Open WebUI use."""

import httpx
import pytest

from oci_emulator.catalog import endpoint_ocid
from oci_emulator.generate import relevance

MODEL = "cohere.rerank-v4.0-fast"
DOCS = [
    "Paris is the capital of France",
    "Bananas are yellow",
    {"text": "The capital of Germany is Berlin"},
    "France borders Spain",
]
QUERY = "What is the capital of France?"


def post(gateway, body, url=None):
    return httpx.post(url or gateway.api_base + "/rerank", json=body,
                      headers={"Authorization": f"Bearer {gateway.key}"}, timeout=30)


def texts() -> list[str]:
    return [d if isinstance(d, str) else d["text"] for d in DOCS]


def rerank_calls(emulator, since=0) -> list[dict]:
    return [e for e in emulator.ledger(since) if e["path"].endswith("/actions/rerankText")]


def records_for(gateway, request_id: str, timeout: float = 10.0) -> list:
    """The usage records of one request (records of earlier tests' streams may land late in this one)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in gateway.usage_records(0, timeout=0) if r.request_id == request_id]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


@pytest.mark.smoke
def test_rerank_results_best_first_with_scores(gateway):
    response = post(gateway, {"model": MODEL, "query": QUERY, "documents": DOCS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == MODEL and body["object"] == "list" and body["id"]
    results = body["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2, 3]
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert results[0]["index"] == 0
    for r in results:  # the emulator's own score for each document
        assert r["relevance_score"] == pytest.approx(relevance(QUERY, texts()[r["index"]]))
        assert "document" not in r  # only with return_documents
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"]

    (call,) = rerank_calls(gateway.emulator)
    assert call["opcRequestId"] == response.headers["x-request-id"] and call["status"] == 200
    (record,) = records_for(gateway, response.headers["x-request-id"])
    assert record.endpoint == "rerank" and record.status == 200 and record.public_model == MODEL
    assert record.upstream_request_id == call["responseRequestId"]
    # OCI's rerank answer has no token counts: the record holds the (low-biased) estimate.
    assert record.prompt_tokens == body["usage"]["prompt_tokens"]
    assert record.usage_source in ("estimated", "none")
    assert 0 < record.prompt_tokens <= call["usage"]["promptTokens"]


def test_top_n_and_return_documents(gateway):
    response = post(gateway, {"model": MODEL, "query": QUERY, "documents": DOCS, "top_n": 2,
                              "return_documents": True})
    results = response.json()["results"]
    assert len(results) == 2
    assert results[0] == {"index": 0, "relevance_score": results[0]["relevance_score"],
                          "document": {"text": texts()[0]}}
    assert results[1]["document"] == {"text": texts()[results[1]["index"]]}
    # A top_n larger than the documents is clamped, as Cohere does.
    response = post(gateway, {"model": MODEL, "query": QUERY, "documents": DOCS, "top_n": 50})
    assert response.status_code == 200 and len(response.json()["results"]) == 4


def test_unprefixed_path_and_document_limits(gateway):
    response = post(gateway, {"model": MODEL, "query": QUERY, "documents": DOCS, "max_tokens_per_doc": 100,
                              "max_chunks_per_doc": 2}, url=gateway.base_url + "/rerank")
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 4


def test_dedicated_rerank_model(gateway):
    from models_registry.services import models_import

    models_import(text=f"""
- region: us-chicago-1
  compartment_id: {gateway.emulator.compartment_id}
  models:
    dedicated:
      - name: rerank-dedicated
        endpoint: {endpoint_ocid("emulator-rerank-v3-5")}
        model_id: cohere.rerank.v3-5
""", source="tests-dedicated")
    response = post(gateway, {"model": "rerank-dedicated", "query": QUERY, "documents": DOCS, "top_n": 1})
    assert response.status_code == 200, response.text
    assert [r["index"] for r in response.json()["results"]] == [0]
    (call,) = rerank_calls(gateway.emulator)
    assert call["status"] == 200 and call["model"] == "cohere.rerank.v3-5"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": QUERY}, "documents"),
        ({"query": QUERY, "documents": []}, "documents"),
        ({"query": QUERY, "documents": ["a", 5]}, "documents[1]"),
        ({"query": "", "documents": ["a"]}, "query"),
        ({"documents": ["a"]}, "query"),
        ({"query": QUERY, "documents": ["a"], "top_n": 0}, "top_n"),
        ({"query": QUERY, "documents": ["a"], "max_chunks_per_doc": -1}, "max_chunks_per_doc"),
    ],
)
def test_bad_requests_name_the_param(gateway, body, param):
    since = gateway.emulator.last_seq()
    response = post(gateway, {"model": MODEL, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    assert rerank_calls(gateway.emulator, since) == []


def test_wrong_capability_and_upstream_errors(gateway):
    response = post(gateway, {"model": "cohere.embed-v4.0", "query": QUERY, "documents": DOCS})
    assert response.status_code == 400 and response.json()["error"]["code"] == "model_not_supported"
    response = post(gateway, {"model": MODEL, "query": QUERY + " [[emulator: status=503]]", "documents": DOCS})
    assert response.status_code == 503 and response.json()["error"]["type"] == "upstream_unavailable"
    (record,) = records_for(gateway, response.headers["x-request-id"])
    assert record.status == 503 and record.error_type == "upstream_unavailable"
    response = post(gateway, {"model": MODEL, "query": QUERY, "documents": ["d"] * 1001})
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == "documents", error
    (record,) = records_for(gateway, response.headers["x-request-id"])
    assert record.status == 400
