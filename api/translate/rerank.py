"""The Cohere/Jina-style rerank API (as LiteLLM and Open WebUI call it) ⇄ OCI rerankText (pure)."""

from __future__ import annotations

from typing import Any

from api.errors import GatewayError, bad_request

# Cohere's names for OCI's per-document limits (v1 and v2 spellings).
_DOCUMENT_LIMITS = {
    "max_chunks_per_doc": "maxChunksPerDocument",
    "max_chunks_per_document": "maxChunksPerDocument",
    "max_tokens_per_doc": "maxTokensPerDocument",
    "max_tokens_per_document": "maxTokensPerDocument",
}


def rerank_request_to_oci(
    *, query: str, documents: list[str], top_n: int | None, extras: dict[str, Any], serving_mode: dict,
    compartment_id: str,
) -> dict:
    body: dict = {"input": query, "documents": documents, "servingMode": serving_mode,
                  "compartmentId": compartment_id}
    if top_n is not None:
        body["topN"] = min(top_n, len(documents))  # Cohere clamps a larger top_n; so do we
    for name, field in _DOCUMENT_LIMITS.items():
        value = extras.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad_request(f"{name}: expected a positive integer", param=name)
        body[field] = value
    # isEcho is not sent: the documents are ours already, so they are filled in here (less to transfer).
    return body


def rerank_result_to_openai(
    result: dict, *, documents: list[str], return_documents: bool, model: str, response_id: str, usage: dict | None,
) -> dict:
    ranks = result.get("documentRanks")
    if not isinstance(ranks, list):
        raise GatewayError(502, "OCI's rerank answer has no documentRanks.", type="upstream_unavailable",
                           code="upstream_bad_response")
    results = []
    for rank in ranks:
        index = rank.get("index")
        if not isinstance(index, int) or not 0 <= index < len(documents):
            raise GatewayError(502, f"OCI ranked a document index it was not sent: {index!r}.",
                               type="upstream_unavailable", code="upstream_bad_response")
        item: dict = {"index": index, "relevance_score": rank.get("relevanceScore")}
        if return_documents:
            item["document"] = {"text": documents[index]}
        results.append(item)
    body: dict = {"object": "list", "id": response_id, "model": model, "results": results}
    if usage is not None:
        body["usage"] = usage
    return body


_OCI_NAMES = {"topN": "top_n", "documents": "documents", "maxChunksPerDocument": "max_chunks_per_doc",
              "maxTokensPerDocument": "max_tokens_per_doc", "input": "query"}


def remap_error(error: GatewayError) -> GatewayError:
    """An upstream 400 naming OCI's fields, with `param` in the client's terms."""
    if error.status != 400 or error.param:
        return error
    for oci, name in _OCI_NAMES.items():
        if oci in error.message:
            return GatewayError(error.status, error.message, type=error.type, code=error.code, param=name,
                                headers=error.headers)
    return error
