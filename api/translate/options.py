"""What the translator needs to know about the deployment a request goes to."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

API_FORMATS = ("GENERIC", "COHERE", "COHEREV2", "OPENAI")

# OpenAI reasoning models on OCI reject maxTokens and need maxCompletionTokens; gpt-oss keeps maxTokens.
_COMPLETION_TOKENS_MODELS = re.compile(r"^openai\.(gpt-5|o\d)")

_EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """The target deployment as the translator sees it (built by the caller from the registry).

    - `model_id`: the OCI model id (name or OCID) or, for OPENAI passthrough, the upstream model name.
    - `api_format`: "GENERIC" | "COHERE" | "COHEREV2" | "OPENAI".
    - `default_max_tokens`: output length sent when the client names none (OCI's own default is tiny).
    - `max_output_tokens`: cap; larger client values are lowered to it, never rejected.
    - `max_tokens_field`: "maxTokens" | "maxCompletionTokens"; None (or "") derives it from `model_id`.
    - `unsupported_params`: "drop" (drop and list them) or "reject" (400).
    - `param_defaults`: sampling defaults used when the client sends none, by OpenAI name
      (`{"temperature": 0.3, "top_k": 40}`); a key naming a field of the target OCI request
      (`{"safetyMode": "OFF"}`) is set verbatim when the translation did not set it.
    """

    model_id: str
    api_format: str = "GENERIC"
    default_max_tokens: int | None = None
    max_output_tokens: int | None = None
    max_tokens_field: str | None = None
    supports_tools: bool = True
    supports_vision: bool = False
    supports_reasoning: bool = False
    unsupported_params: str = "drop"
    param_defaults: Mapping[str, object] = field(default_factory=lambda: _EMPTY)

    @property
    def reject_unsupported(self) -> bool:
        return self.unsupported_params == "reject"

    def output_tokens_field(self) -> str:
        """The GENERIC field that carries the output length for this model."""
        if self.max_tokens_field:
            return self.max_tokens_field
        if _COMPLETION_TOKENS_MODELS.match(self.model_id.lower()):
            return "maxCompletionTokens"
        return "maxTokens"


def default_api_format(model_id: str) -> str:
    """OCI's chat format for a model id (reference §9): Command R family speaks COHERE, Command A
    COHEREV2, other Cohere chat models COHERE, everything else GENERIC."""
    name = model_id.lower()
    if name.startswith("cohere.command-r"):
        return "COHERE"
    if name.startswith("cohere.command-a"):
        return "COHEREV2"
    if name.startswith("cohere."):
        return "COHERE"
    return "GENERIC"
