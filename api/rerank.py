"""POST /v1/rerank (also /rerank): OCI rerankText for on-demand and dedicated rerank models.

OCI's RerankTextResult carries no token counts, so the usage recorded (and returned) is a tokenizer-free
estimate, biased low like every estimate the gateway records; an upstream that does report usage wins.
"""

from __future__ import annotations

import orjson

from models_registry.catalog import DeploymentSpec

from .context import CallContext, estimate_prompt_tokens
from .embeddings import call_upstream_json
from .errors import GatewayError, bad_request
from .http import ApiResponse
from .schemas import RerankRequest
from .translate import rerank as tr


async def create_rerank(ctx: CallContext, req: RerankRequest, d: DeploymentSpec) -> ApiResponse:
    if d.api_format == "OPENAI":
        raise bad_request(f"The model '{ctx.public_model}' is not an OCI rerank model.", param="model")
    documents = req.texts()
    body = tr.rerank_request_to_oci(
        query=req.query, documents=documents, top_n=req.top_n, extras=req.model_extra or {},
        serving_mode=d.serving_mode(), compartment_id=d.compartment_id,
    )
    url = f"{d.base_url}/20231130/actions/rerankText"
    try:
        result, upstream_id = await call_upstream_json(d, url, body, request_id=ctx.request.request_id)
    except GatewayError as error:
        error = tr.remap_error(error)
        ctx.fail(error.status, error.type)
        raise error from None
    ctx.upstream_request_id = upstream_id
    ctx.mark_first_token()
    usage = result.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("totalTokens", usage.get("promptTokens")), int):
        tokens = int(usage.get("promptTokens", usage.get("totalTokens")))
        ctx.usage_source = "upstream"
    else:
        tokens = estimate_prompt_tokens(len(req.query) + sum(len(doc) for doc in documents))
        ctx.usage_source = "estimated"
    ctx.usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    out = tr.rerank_result_to_openai(
        result, documents=documents, return_documents=bool(req.return_documents), model=ctx.public_model,
        response_id="rerank-" + ctx.request.request_id.lower(), usage=ctx.usage,
    )
    return ApiResponse(status=200, body=orjson.dumps(out), headers={"x-gateway-deployment": d.name})
