"""OpenAI embeddings ⇄ OCI embedText (pure: no Django, no I/O).

An OpenAI request may carry thousands of inputs; OCI takes at most 96 per call and one image per call.
`plan_calls` splits the inputs into upstream calls that remember which input positions they carry, so
the answers can be put back in input order whatever order the calls finish in.
"""

from __future__ import annotations

import base64
import re
import sys
from array import array
from dataclasses import dataclass
from typing import Any

from api.errors import GatewayError, bad_request

MAX_INPUTS_PER_CALL = 96  # OCI's limit per embedText call (reference §5.1)

TRUNCATE_VALUES = ("NONE", "START", "END")
INPUT_TYPES = ("SEARCH_DOCUMENT", "SEARCH_QUERY", "CLASSIFICATION", "CLUSTERING", "IMAGE")

# Output dimensions OCI accepts, by model family (Embed 4 only; the v3 models have fixed sizes).
_SETTABLE_DIMENSIONS = (("cohere.embed-v4", (256, 512, 1024, 1536)),)

_TOKEN_ARRAYS = "token arrays are not supported (OCI embeds text); send the text as strings"


@dataclass(frozen=True, slots=True)
class EmbedItem:
    """One input: text, or an image as a base64 `data:image/...` URL."""

    value: str
    image: bool = False


@dataclass(frozen=True, slots=True)
class EmbedCall:
    """One upstream embedText call: the positions of the inputs it carries, and its body."""

    indices: tuple[int, ...]
    body: dict


def _is_image_url(value: str) -> bool:
    return value.startswith("data:image/") and ";base64," in value[:100]


def _image_item(url: Any, param: str) -> EmbedItem:
    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str) or not url:
        raise bad_request(f"{param}: expected an image URL", param=param)
    if not _is_image_url(url):
        raise bad_request(
            f"{param}: OCI embeds images given as base64 data URLs (data:image/png;base64,...), not links",
            param=param,
        )
    return EmbedItem(url, image=True)


def _item(value: Any, param: str) -> EmbedItem:
    if isinstance(value, str):
        if not value:
            raise bad_request(f"{param}: must not be an empty string", param=param)
        return EmbedItem(value, image=_is_image_url(value))
    if isinstance(value, dict):
        kind = value.get("type")
        # OpenAI content-part style ({"type": "text"|"image_url", ...}) or Jina/Cohere style ({"text"}|{"image"}).
        if kind == "image_url" or (kind is None and "image_url" in value):
            return _image_item(value.get("image_url"), param)
        if kind == "image" or (kind is None and "image" in value):
            return _image_item(value.get("image"), param)
        if kind in ("text", None) and "text" in value:
            text = value.get("text")
            if not isinstance(text, str) or not text:
                raise bad_request(f"{param}.text: expected a non-empty string", param=f"{param}.text")
            return EmbedItem(text)
        raise bad_request(
            f"{param}: expected a string, {{\"type\": \"text\", \"text\": ...}} or "
            f"{{\"type\": \"image_url\", \"image_url\": {{\"url\": ...}}}}",
            param=param,
        )
    if isinstance(value, (int, list)) and not isinstance(value, bool):
        raise bad_request(f"{param}: {_TOKEN_ARRAYS}", param=param)
    raise bad_request(f"{param}: expected a string", param=param)


def parse_input(value: Any) -> list[EmbedItem]:
    """The `input` parameter as items; a 400 naming `input` or `input[i]` for what OCI cannot embed."""
    if value is None:
        raise bad_request("Missing required parameter: 'input'.", param="input")
    if isinstance(value, str):
        return [_item(value, "input")]
    if isinstance(value, dict):
        return [_item(value, "input")]
    if not isinstance(value, list):
        raise bad_request("input: expected a string or a list of strings", param="input")
    if not value:
        raise bad_request("input: must not be empty", param="input")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise bad_request(f"input: {_TOKEN_ARRAYS}", param="input")
    return [_item(v, f"input[{i}]") for i, v in enumerate(value)]


def normalize_truncate(value: Any, default: str) -> str:
    if value is None:
        return (default or "END").upper()
    if isinstance(value, str) and value.upper() in TRUNCATE_VALUES:
        return value.upper()
    raise bad_request(f"truncate: expected one of {', '.join(TRUNCATE_VALUES)}", param="truncate")


def normalize_input_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.upper() in INPUT_TYPES:
        return value.upper()
    allowed = ", ".join(v.lower() for v in INPUT_TYPES)
    raise bad_request(f"input_type: expected one of {allowed}", param="input_type")


def settable_dimensions(model_id: str) -> tuple[int, ...] | None:
    """The output sizes `model_id` accepts; () when it has one fixed size; None when unknown (no model id)."""
    if not model_id:
        return None
    name = model_id.lower()
    for prefix, sizes in _SETTABLE_DIMENSIONS:
        if name.startswith(prefix):
            return sizes
    return ()


def check_dimensions(dimensions: int | None, model_id: str, public_name: str) -> None:
    if dimensions is None:
        return
    sizes = settable_dimensions(model_id)
    if sizes is None:  # a dedicated endpoint whose base model is not recorded: let OCI judge
        return
    if not sizes:
        raise bad_request(
            f"dimensions: the model '{public_name}' has a fixed output size; omit dimensions",
            param="dimensions",
        )
    if dimensions not in sizes:
        raise bad_request(
            f"dimensions: the model '{public_name}' supports {', '.join(map(str, sizes))}, not {dimensions}",
            param="dimensions",
        )


def plan_calls(
    items: list[EmbedItem],
    *,
    serving_mode: dict,
    compartment_id: str,
    truncate: str,
    input_type: str | None,
    dimensions: int | None,
    batch_size: int = MAX_INPUTS_PER_CALL,
) -> list[EmbedCall]:
    """Texts in batches of `batch_size`, then each image in a call of its own (OCI takes one per call)."""
    base: dict = {"servingMode": serving_mode, "compartmentId": compartment_id, "truncate": truncate}
    if dimensions is not None:
        base["outputDimensions"] = dimensions
    texts = [i for i, item in enumerate(items) if not item.image]
    calls = []
    for start in range(0, len(texts), batch_size):
        indices = tuple(texts[start: start + batch_size])
        body = {"inputs": [items[i].value for i in indices], **base}
        if input_type and input_type != "IMAGE":
            body["inputType"] = input_type
        calls.append(EmbedCall(indices, body))
    for i, item in enumerate(items):
        if item.image:
            calls.append(EmbedCall((i,), {"inputs": [item.value], **base, "inputType": "IMAGE"}))
    return calls


def vectors_of(result: dict, expected: int) -> list[list[float]]:
    """The float vectors of one embedText result (502 when they do not match the inputs sent)."""
    vectors = result.get("embeddings")
    if not vectors and isinstance(result.get("embeddingsByType"), dict):
        by_type = {str(k).lower(): v for k, v in result["embeddingsByType"].items()}
        vectors = by_type.get("float")
    if not isinstance(vectors, list) or len(vectors) != expected:
        got = len(vectors) if isinstance(vectors, list) else 0
        raise GatewayError(
            502,
            f"OCI returned {got} embeddings for {expected} inputs.",
            type="upstream_unavailable",
            code="upstream_bad_response",
        )
    return vectors


def prompt_tokens_of(result: dict) -> int | None:
    usage = result.get("usage")
    if not isinstance(usage, dict):
        return None
    value = usage.get("promptTokens", usage.get("totalTokens"))
    return int(value) if isinstance(value, (int, float)) else None


def encode_base64(vector: list[float]) -> str:
    """OpenAI's base64 format: the vector as little-endian float32."""
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def embeddings_response(vectors: list[list[float]], *, model: str, encoding_format: str | None,
                        prompt_tokens: int) -> dict:
    as_base64 = encoding_format == "base64"
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_base64(v) if as_base64 else v}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


_POSITION = re.compile(r"\b(?:inputs|embedContents)\[(\d+)\]")
_OCI_NAMES = {"outputDimensions": "dimensions", "inputType": "input_type", "truncate": "truncate",
              "inputs": "input"}


def remap_error(error: GatewayError, call: EmbedCall) -> GatewayError:
    """An upstream 400 about one call, in the client's terms: `inputs[5]` of the third call is `input[197]`."""
    if error.status != 400:
        return error
    message, param = error.message, error.param

    def _global(match: re.Match) -> str:
        local = int(match.group(1))
        return f"input[{call.indices[local]}]" if local < len(call.indices) else "input"

    found = _POSITION.search(message)
    if found:
        message = _POSITION.sub(_global, message)
        param = _global(found)
    if not param:
        for oci, openai in _OCI_NAMES.items():
            if oci in message:
                param = openai
                break
    return GatewayError(error.status, message, type=error.type, code=error.code, param=param,
                        headers=error.headers)
