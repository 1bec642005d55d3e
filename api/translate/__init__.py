"""Pure translation between OpenAI's chat-completions API and OCI Generative AI (no Django, no I/O).

One module per upstream format (`generic`, `cohere`, `cohere_v2`, `openai_passthrough`), each with
`chat_request_to_oci(req, opts)`, `chat_result_to_openai(result, *, model, completion_id, created, turn)`
and a stream translator; this package dispatches on `ChatOptions.api_format`.
"""

from __future__ import annotations

from api.schemas import ChatCompletionRequest
from api.translate import cohere, cohere_v2, generic, openai_passthrough
from api.translate.common import StreamTranslatorBase, TranslatedRequest
from api.translate.options import ChatOptions, default_api_format

__all__ = [
    "ChatOptions",
    "StreamTranslatorBase",
    "TranslatedRequest",
    "default_api_format",
    "stream_translator",
    "translate_chat_request",
    "translate_chat_result",
]

_MODULES = {
    "GENERIC": generic,
    "COHERE": cohere,
    "COHEREV2": cohere_v2,
    "OPENAI": openai_passthrough,
}
_STREAMS: dict[str, type[StreamTranslatorBase]] = {
    "GENERIC": generic.GenericStreamTranslator,
    "COHERE": cohere.CohereStreamTranslator,
    "COHEREV2": cohere_v2.CohereV2StreamTranslator,
    "OPENAI": openai_passthrough.OpenAIStreamTranslator,
}


def _module(api_format: str):
    try:
        return _MODULES[api_format]
    except KeyError:
        raise ValueError(f"unknown api format {api_format!r}") from None


def translate_chat_request(req: ChatCompletionRequest, opts: ChatOptions) -> TranslatedRequest:
    """The upstream request for `opts.api_format` (raises `GatewayError` 400 for what cannot be sent)."""
    return _module(opts.api_format).chat_request_to_oci(req, opts)


def translate_chat_result(
    result: dict, *, api_format: str, model: str, completion_id: str, created: int, turn: int = 0
) -> dict:
    """An upstream non-streamed result as an OpenAI `chat.completion`."""
    return _module(api_format).chat_result_to_openai(
        result, model=model, completion_id=completion_id, created=created, turn=turn
    )


def stream_translator(
    api_format: str, *, model: str, completion_id: str, created: int, turn: int = 0
) -> StreamTranslatorBase:
    """A fresh stream translator for one upstream stream."""
    _module(api_format)
    return _STREAMS[api_format](model, completion_id, created, turn=turn)
