"""Validation of OpenAI request bodies: chat completions, embeddings, rerank, legacy completions.

Bodies are decoded with orjson and validated by pydantic v2 models that allow (and keep) unknown keys,
because clients send vendor extras (`top_k`, `documents`, ...). The first validation error becomes one
OpenAI-style 400 naming the parameter in dotted/indexed form: `messages[2].content: expected a string or a
list of content parts`, with `param="messages[2].content"`.

Unions are tagged with callable discriminators whose tags start with `#`: pydantic then reports one error
for the branch that applies (instead of one per branch), and the `#` tags are dropped from the location.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from api.errors import GatewayError, bad_request


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _tag_of(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return value.get(key)
    return getattr(value, key, None)


# --- content parts -------------------------------------------------------------------------------


class TextPart(_Model):
    type: Literal["text"]
    text: str


class ImageURL(_Model):
    url: str
    detail: Literal["auto", "low", "high", "original"] | None = None


def _image_url_from_str(value: Any) -> Any:
    # Some clients (older vLLM examples) send `"image_url": "<url>"` instead of `{"url": ...}`.
    return {"url": value} if isinstance(value, str) else value


class ImagePart(_Model):
    type: Literal["image_url"]
    image_url: Annotated[ImageURL, BeforeValidator(_image_url_from_str)]


class InputAudio(_Model):
    data: str
    format: str


class AudioPart(_Model):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileData(_Model):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Model):
    type: Literal["file"]
    file: FileData


class RefusalPart(_Model):
    type: Literal["refusal"]
    refusal: str


_PART_TAGS = {
    "text": "#text",
    "image_url": "#image_url",
    "input_audio": "#input_audio",
    "file": "#file",
    "refusal": "#refusal",
}

ContentPart = Annotated[
    Annotated[TextPart, Tag("#text")]
    | Annotated[ImagePart, Tag("#image_url")]
    | Annotated[AudioPart, Tag("#input_audio")]
    | Annotated[FilePart, Tag("#file")]
    | Annotated[RefusalPart, Tag("#refusal")],
    Discriminator(
        lambda v: _PART_TAGS.get(_tag_of(v, "type")),
        custom_error_type="invalid_content_part",
        custom_error_message=(
            "expected a content part with type text, image_url, input_audio, file or refusal"
        ),
    ),
]


def _content_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "#str"
    if isinstance(value, list):
        return "#list"
    return None


Content = Annotated[
    Annotated[str, Tag("#str")] | Annotated[list[ContentPart], Tag("#list")],
    Discriminator(
        _content_tag,
        custom_error_type="invalid_content",
        custom_error_message="expected a string or a list of content parts",
    ),
]


# --- messages ------------------------------------------------------------------------------------


def _arguments_to_str(value: Any) -> Any:
    # OpenAI sends arguments as a JSON string; some clients replay them as an object.
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return value


class ToolCallFunction(_Model):
    name: str
    arguments: Annotated[str, BeforeValidator(_arguments_to_str)] = ""


class FunctionToolCall(_Model):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class CustomToolCall(_Model):
    id: str
    type: Literal["custom"]
    custom: dict[str, Any]


ToolCall = Annotated[
    Annotated[FunctionToolCall, Tag("#function")] | Annotated[CustomToolCall, Tag("#custom")],
    Discriminator(
        lambda v: {"function": "#function", None: "#function", "custom": "#custom"}.get(_tag_of(v, "type")),
        custom_error_type="invalid_tool_call",
        custom_error_message="expected a tool call with type function",
    ),
]


class SystemMessage(_Model):
    role: Literal["system"]
    content: Content
    name: str | None = None


class DeveloperMessage(_Model):
    role: Literal["developer"]
    content: Content
    name: str | None = None


class UserMessage(_Model):
    role: Literal["user"]
    content: Content
    name: str | None = None


class FunctionCallBody(_Model):
    name: str
    arguments: Annotated[str, BeforeValidator(_arguments_to_str)] = ""


class AssistantMessage(_Model):
    role: Literal["assistant"]
    content: Content | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCallBody | None = None
    audio: dict[str, Any] | None = None


class ToolMessage(_Model):
    role: Literal["tool"]
    content: Content
    tool_call_id: str


class FunctionMessage(_Model):
    """The legacy `function` role: recognised only to reject it with a clear message."""

    role: str

    @field_validator("role")
    @classmethod
    def _reject(cls, value: str) -> str:
        raise PydanticCustomError(
            "unsupported_role",
            "the legacy 'function' role is not supported; "
            "send tool results with role 'tool' and a tool_call_id",
        )


_ROLE_TAGS = {
    "system": "#system",
    "developer": "#developer",
    "user": "#user",
    "assistant": "#assistant",
    "tool": "#tool",
    "function": "#function",
}

Message = Annotated[
    Annotated[SystemMessage, Tag("#system")]
    | Annotated[DeveloperMessage, Tag("#developer")]
    | Annotated[UserMessage, Tag("#user")]
    | Annotated[AssistantMessage, Tag("#assistant")]
    | Annotated[ToolMessage, Tag("#tool")]
    | Annotated[FunctionMessage, Tag("#function")],
    Discriminator(
        lambda v: _ROLE_TAGS.get(_tag_of(v, "role")),
        custom_error_type="invalid_message",
        custom_error_message="expected a message object with role system, developer, user, assistant or tool",
    ),
]


# --- tools, formats, options ---------------------------------------------------------------------


class FunctionDefinition(_Model):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(_Model):
    type: Literal["function"]
    function: FunctionDefinition


class CustomTool(_Model):
    type: Literal["custom"]
    custom: dict[str, Any]


Tool = Annotated[
    Annotated[FunctionTool, Tag("#function")] | Annotated[CustomTool, Tag("#custom")],
    Discriminator(
        lambda v: {"function": "#function", "custom": "#custom"}.get(_tag_of(v, "type")),
        custom_error_type="invalid_tool",
        custom_error_message="expected a tool with type function",
    ),
]


class JSONSchemaSpec(_Model):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatText(_Model):
    type: Literal["text"]


class ResponseFormatJSONObject(_Model):
    type: Literal["json_object"]


class ResponseFormatJSONSchema(_Model):
    type: Literal["json_schema"]
    json_schema: JSONSchemaSpec


ResponseFormat = Annotated[
    Annotated[ResponseFormatText, Tag("#text")]
    | Annotated[ResponseFormatJSONObject, Tag("#json_object")]
    | Annotated[ResponseFormatJSONSchema, Tag("#json_schema")],
    Discriminator(
        lambda v: {"text": "#text", "json_object": "#json_object", "json_schema": "#json_schema"}.get(
            _tag_of(v, "type")
        ),
        custom_error_type="invalid_response_format",
        custom_error_message="expected an object with type text, json_object or json_schema",
    ),
]


class StreamOptions(_Model):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class Prediction(_Model):
    type: Literal["content"]
    content: Content


class ApproximateLocation(_Model):
    city: str | None = None
    country: str | None = None
    region: str | None = None
    timezone: str | None = None


class UserLocation(_Model):
    type: Literal["approximate"] = "approximate"
    approximate: ApproximateLocation


class WebSearchOptions(_Model):
    search_context_size: Literal["low", "medium", "high"] | None = None
    user_location: UserLocation | None = None


_TOOL_CHOICE_ERROR = (
    'expected \'none\', \'auto\', \'required\' or {"type": "function", "function": {"name": ...}}'
)


def _check_tool_choice(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        if value in ("none", "auto", "required"):
            return value
        raise PydanticCustomError("invalid_tool_choice", _TOOL_CHOICE_ERROR)
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "function":
            fn = value.get("function")
            if isinstance(fn, dict) and isinstance(fn.get("name"), str) and fn["name"]:
                return value
        elif kind == "allowed_tools":
            allowed = value.get("allowed_tools")
            if (
                isinstance(allowed, dict)
                and allowed.get("mode") in ("auto", "required")
                and isinstance(allowed.get("tools"), list)
            ):
                return value
        elif kind == "custom":
            custom = value.get("custom")
            if isinstance(custom, dict) and isinstance(custom.get("name"), str):
                return value
    raise PydanticCustomError("invalid_tool_choice", _TOOL_CHOICE_ERROR)


def _check_function_call(value: Any) -> Any:
    if value is None or value in ("none", "auto"):
        return value
    if isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"]:
        return value
    raise PydanticCustomError("invalid_function_call", "expected 'none', 'auto' or {\"name\": ...}")


def _check_stop(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise PydanticCustomError("invalid_stop", "expected a string or a list of strings")


ToolChoice = Annotated[Any, BeforeValidator(_check_tool_choice)]
Stop = Annotated[Any, BeforeValidator(_check_stop)]


# --- chat completions ----------------------------------------------------------------------------


class ChatCompletionRequest(_Model):
    """`POST /v1/chat/completions`. Its field set is exactly the openai SDK's create params plus `stream`."""

    messages: list[Message] = Field(min_length=1)
    model: str = Field(min_length=1)
    audio: dict[str, Any] | None = None
    frequency_penalty: float | None = None
    function_call: Annotated[Any, BeforeValidator(_check_function_call)] = None
    functions: list[FunctionDefinition] | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    metadata: dict[str, str] | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    moderation: dict[str, Any] | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    parallel_tool_calls: bool | None = None
    prediction: Prediction | None = None
    presence_penalty: float | None = None
    prompt_cache_key: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    prompt_cache_retention: str | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    response_format: ResponseFormat | None = None
    safety_identifier: str | None = None
    seed: int | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    stop: Stop = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    tool_choice: ToolChoice = None
    tools: list[Tool] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    top_p: float | None = None
    user: str | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    web_search_options: WebSearchOptions | None = None

    _raw: dict = PrivateAttr(default_factory=dict)

    @property
    def raw(self) -> dict:
        """The decoded body as the client sent it (the OpenAI passthrough forwards it)."""
        if not self._raw:  # built with model_validate rather than parse_chat_request
            self._raw = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return self._raw

    @property
    def extras(self) -> dict[str, Any]:
        """Keys the client sent that the OpenAI API does not declare (vendor extras)."""
        return self.__pydantic_extra__ or {}


# --- embeddings, rerank, legacy completions ------------------------------------------------------


def _check_text_inputs(value: Any) -> Any:
    """A string or a non-empty list of non-empty strings; token arrays cannot be sent to OCI."""
    if isinstance(value, str):
        if not value:
            raise PydanticCustomError("invalid_input", "must not be an empty string")
        return value
    if isinstance(value, list) and value:
        for i, item in enumerate(value):
            if not isinstance(item, str):
                if isinstance(item, (int, list)):
                    raise PydanticCustomError(
                        "invalid_input", "token arrays are not supported; send the text as strings"
                    )
                raise PydanticCustomError("invalid_input", "expected a string or a list of strings")
            if not item:
                raise PydanticCustomError(
                    "invalid_input", "item {index} must not be an empty string", {"index": i}
                )
        return value
    if isinstance(value, list):
        raise PydanticCustomError("invalid_input", "must not be empty")
    raise PydanticCustomError("invalid_input", "expected a string or a list of strings")


TextInputs = Annotated[Any, BeforeValidator(_check_text_inputs)]


class EmbeddingsRequest(_Model):
    model: str = Field(min_length=1)
    input: TextInputs
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class RerankDocument(_Model):
    text: str


RerankDocumentItem = Annotated[
    Annotated[str, Tag("#str")] | Annotated[RerankDocument, Tag("#doc")],
    Discriminator(
        lambda v: "#str" if isinstance(v, str) else "#doc" if isinstance(v, (dict, RerankDocument)) else None,
        custom_error_type="invalid_document",
        custom_error_message="expected a string or an object with a text field",
    ),
]


class RerankRequest(_Model):
    model: str = Field(min_length=1)
    query: str = Field(min_length=1)
    documents: list[RerankDocumentItem] = Field(min_length=1)
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool | None = None

    def texts(self) -> list[str]:
        return [doc if isinstance(doc, str) else doc.text for doc in self.documents]


class CompletionsRequest(_Model):
    """Legacy `POST /v1/completions`."""

    model: str = Field(min_length=1)
    prompt: TextInputs
    best_of: int | None = Field(default=None, ge=1)
    echo: bool | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)
    max_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=128)
    presence_penalty: float | None = None
    seed: int | None = None
    stop: Stop = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


# --- parsing -------------------------------------------------------------------------------------


def format_loc(loc: tuple | list) -> str:
    """`("messages", 2, "#user", "content")` → `messages[2].content` (union tags starting with # dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith("#"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_error_to_gateway(exc: ValidationError) -> GatewayError:
    """The first pydantic error as one OpenAI-style 400 that names the parameter."""
    err = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    param = format_loc(err["loc"]) or None
    kind = err["type"]
    msg = err["msg"]
    if kind == "missing":
        return bad_request(f"Missing required parameter: '{param}'.", param=param)
    if kind == "too_short" and err["loc"] and isinstance(err["loc"][-1], str):
        text = "must not be empty"
    else:
        text = msg[:1].lower() + msg[1:] if msg else "invalid value"
    return bad_request(f"{param}: {text}" if param else text, param=param)


def _decode(raw: bytes | bytearray | memoryview | str) -> dict:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"Invalid JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("Invalid JSON body: expected a JSON object")
    return data


def _validate(model: type[_Model], data: dict) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error_to_gateway(exc) from None


def parse_chat_request(raw: bytes) -> ChatCompletionRequest:
    data = _decode(raw)
    req = _validate(ChatCompletionRequest, data)
    req._raw = data
    return req


def parse_embeddings_request(raw: bytes) -> EmbeddingsRequest:
    return _validate(EmbeddingsRequest, _decode(raw))


def parse_rerank_request(raw: bytes) -> RerankRequest:
    return _validate(RerankRequest, _decode(raw))


def parse_completions_request(raw: bytes) -> CompletionsRequest:
    return _validate(CompletionsRequest, _decode(raw))
