"""Handlers for the inference API: ``/20231130/actions/{chat,embedText,rerankText}``."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import chat as chatmod
from . import streams
from .catalog import Catalog, ModelInfo
from .errors import bad_request, not_found
from .generate import (
    count_tokens,
    embed_text,
    parse_directives,
    quantize,
    relevance,
    strip_directives,
    truncate_tokens,
)

MAX_EMBED_INPUTS = 96
MAX_RERANK_DOCUMENTS = 1000


@dataclass
class Result:
    """What a handler produced; the app writes it, applies faults and fills the ledger."""

    body: dict | None = None  # JSON answer (status 200)
    events: list | None = None  # stream events [(payload, tokens)], see streams.py
    usage: dict | None = None  # billed usage for a JSON answer
    prompt_tokens: int = 0  # billed prompt tokens for a stream
    # A stream written to the end bills the whole answer's tokens (what its usage event says), not the sum
    # over fragments: an argument split inside a word must not count as two tokens.
    completion_tokens: int | None = None
    reasoning_tokens: int = 0
    directives: dict = field(default_factory=dict)
    model: str | None = None
    api_format: str | None = None
    openai: bool = False  # OpenAI-style error bodies


@dataclass
class Ctx:
    settings: dict
    catalog: Catalog
    request_id: str
    headers: dict
    path: str


def resolve_serving(data: dict, ctx: Ctx, capability: str) -> tuple[str, ModelInfo]:
    settings = ctx.settings
    if data["compartmentId"] not in settings["compartments"]:
        raise not_found(settings)
    mode = data["servingMode"]
    if mode["servingType"] == "ON_DEMAND":
        model_id = mode["modelId"]
        model = ctx.catalog.resolve_model(model_id)
        if model is None:
            if model_id in ctx.catalog.retired:
                raise bad_request(settings, f"Invalid parameter: model {model_id} has been retired and is no "
                                            "longer available for on-demand inference.")
            raise not_found(settings)
        if not model.on_demand:
            raise bad_request(settings, f"Invalid parameter: model {model.name} is not available for on-demand "
                                        "serving; use a dedicated endpoint.")
    else:
        found = ctx.catalog.resolve_endpoint(mode["endpointId"])
        if found is None:
            raise not_found(settings)
        _ep, model = found
        model_id = model.ocid
    if capability not in model.capabilities:
        what = {"CHAT": "chat", "TEXT_EMBEDDINGS": "embedText", "TEXT_RERANK": "rerankText"}[capability]
        raise bad_request(settings, f"Invalid parameter: model {model.name} does not support {what}.")
    return model_id, model


def handle_chat(data: dict, ctx: Ctx) -> Result:
    settings = ctx.settings
    model_id, model = resolve_serving(data, ctx, "CHAT")
    cr = data["chatRequest"]
    fmt = cr["apiFormat"]
    if fmt not in model.api_formats:
        raise bad_request(settings, f"Invalid parameter: apiFormat {fmt} is not supported by model {model.name}; "
                                    f"use {' or '.join(model.api_formats)}.")
    req, include_usage = chatmod.PARSERS[fmt](cr, model, settings)
    gens = chatmod.run(req)
    result = Result(directives=req.directives, model=model.name, api_format=fmt,
                    prompt_tokens=gens[0].prompt_tokens, reasoning_tokens=sum(g.reasoning_tokens for g in gens),
                    completion_tokens=sum(g.completion_tokens for g in gens))
    stream = bool(cr.get("isStream"))
    if fmt == "GENERIC":
        if stream:
            result.events = streams.generic_events(gens, include_usage, settings)
        else:
            result.body = chatmod.generic_response(gens, model_id, model, settings)
    elif fmt == "COHERE":
        gen = gens[0]
        if stream:
            result.events = streams.cohere_events(gen, chatmod.cohere_chat_response(gen, cr), include_usage)
        else:
            result.body = chatmod.cohere_response(gen, cr, model_id, model)
    else:
        gen = gens[0]
        if stream:
            result.events = streams.coherev2_events(gen, include_usage, settings)
        else:
            result.body = chatmod.coherev2_response(gen, model_id, model, ctx.request_id)
    if result.body is not None:
        result.usage = streams.generation_usage(gens)
    return result


def _image_url_ok(url: str) -> bool:
    return url.startswith("data:image/") and ";base64," in url


def handle_embed(data: dict, ctx: Ctx) -> Result:
    settings = ctx.settings
    model_id, model = resolve_serving(data, ctx, "TEXT_EMBEDDINGS")
    inputs, contents = data.get("inputs"), data.get("embedContents")
    if inputs is None and contents is None:
        raise bad_request(settings, "Invalid parameter: one of inputs or embedContents is required.")
    if inputs is not None and contents is not None:
        raise bad_request(settings, "Invalid parameter: only one of inputs or embedContents may be given.")
    items = inputs if inputs is not None else contents
    key = "inputs" if inputs is not None else "embedContents"
    if not items:
        raise bad_request(settings, f"Invalid parameter: {key} must not be empty.")
    if len(items) > MAX_EMBED_INPUTS:
        raise bad_request(settings, f"Invalid parameter: {key} has {len(items)} entries; at most "
                                    f"{MAX_EMBED_INPUTS} are allowed per request.")
    if contents is not None and not model.embed_dims:
        raise bad_request(settings, f"Invalid parameter: embedContents is not supported by model {model.name}.")
    input_type = data.get("inputType")
    texts: list[str] = []
    images = 0
    if inputs is not None:
        for i, text in enumerate(inputs):
            if input_type == "IMAGE":
                if not _image_url_ok(text):
                    raise bad_request(settings, f"Invalid parameter: inputs[{i}] must be a base64 data:image URL "
                                                "when inputType is IMAGE.")
                images += 1
            texts.append(text)
    else:
        for i, c in enumerate(contents):
            if c["type"] == "IMAGE":
                if not _image_url_ok(c["imageUrl"]["url"]):
                    raise bad_request(settings, f"Invalid parameter: embedContents[{i}].imageUrl.url must be a "
                                                "base64 data:image URL.")
                images += 1
                texts.append(c["imageUrl"]["url"])
            else:
                texts.append(c["text"])
    if images and not model.embed_images:
        raise bad_request(settings, f"Invalid parameter: model {model.name} does not support image embeddings.")
    if images > 1:
        raise bad_request(settings, "Invalid parameter: only one image is allowed per request.")
    dims = data.get("outputDimensions")
    if dims is not None:
        if dims not in model.embed_dims:
            allowed = list(model.embed_dims) or "none (not settable for this model)"
            raise bad_request(settings, f"Invalid parameter: outputDimensions {dims} is not supported by model "
                                        f"{model.name}; allowed: {allowed}.")
    else:
        dims = model.embed_default_dim
    truncate = data.get("truncate") or "NONE"
    prompt = 0
    vectors = []
    for i, text in enumerate(texts):
        is_image = text.startswith("data:image/") and (input_type == "IMAGE" or contents is not None)
        n = 1000 if is_image else count_tokens(text)
        if not is_image and n > model.embed_max_tokens:
            if truncate == "NONE":
                raise bad_request(settings, f"Invalid parameter: {key}[{i}] has {n} tokens, more than the "
                                            f"{model.embed_max_tokens} allowed by {model.name}; set truncate to "
                                            "START or END.")
            if truncate == "END":
                text = truncate_tokens(text, model.embed_max_tokens)
            else:
                words = text.split()
                text = " ".join(words[-model.embed_max_tokens // 2:])
            n = min(n, model.embed_max_tokens)
        prompt += n
        vectors.append(embed_text(model.name, text, dims))
    types = data.get("embeddingTypes")
    body: dict = {"id": chatmod.response_id(ctx.request_id), "embeddings": []}
    if not types or "float" in types:
        body["embeddings"] = [list(v) for v in vectors]
    if types:
        body["embeddingsByType"] = {t: [quantize(v, t) for v in vectors] for t in dict.fromkeys(types)}
    if data.get("isEcho"):
        body[key] = items
    usage = {"promptTokens": prompt, "totalTokens": prompt}
    body.update({"modelId": model_id, "modelVersion": model.version, "usage": usage})
    directives = {}
    for text in texts[:MAX_EMBED_INPUTS]:
        if "[[emulator:" in text:
            directives.update(parse_directives(text))
    return Result(body=body, usage=usage, directives=directives, model=model.name)


def handle_rerank(data: dict, ctx: Ctx) -> Result:
    settings = ctx.settings
    model_id, model = resolve_serving(data, ctx, "TEXT_RERANK")
    docs = data["documents"]
    if len(docs) > MAX_RERANK_DOCUMENTS:
        raise bad_request(settings, f"Invalid parameter: documents has {len(docs)} entries; at most "
                                    f"{MAX_RERANK_DOCUMENTS} are allowed.")
    top_n = data.get("topN")
    if top_n is not None and top_n < 1:
        raise bad_request(settings, "Invalid parameter: topN must be at least 1.")
    query = strip_directives(data["input"])
    scored = sorted(((relevance(query, d), i) for i, d in enumerate(docs)), key=lambda x: (-x[0], x[1]))
    if top_n is not None:
        scored = scored[:top_n]
    echo = bool(data.get("isEcho"))
    ranks = []
    for score, i in scored:
        rank: dict = {"index": i, "relevanceScore": score}
        if echo:
            rank["document"] = {"text": docs[i]}
        ranks.append(rank)
    tokens = count_tokens(query) + sum(count_tokens(d) for d in docs)
    body = {"id": chatmod.response_id(ctx.request_id), "modelId": model_id, "modelVersion": model.version,
            "documentRanks": ranks}
    return Result(body=body, usage={"promptTokens": tokens, "totalTokens": tokens},
                  directives=parse_directives(data["input"]), model=model.name)
