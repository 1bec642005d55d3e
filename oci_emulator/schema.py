"""Request-body validation driven by the ``oci`` SDK's own model classes.

At import time every class reachable from the request roots is read once: ``swagger_types`` and
``attribute_map`` (instance attributes), the ``**[Required]**`` marker in each property docstring,
the ``allowed_values`` list compiled into each setter, and the discriminator map behind each
``get_subtype`` static method. Validation then walks a decoded JSON body against those tables and
raises :class:`SchemaError` naming the first offending field by its JSON path, e.g.
``chatRequest.responseFormat.jsonSchema.strict``.

A few service-side rules that the SDK does not encode (required ``messages``, user ``content``,
``text`` on a TEXT part, ...) are added in ``EXTRA_REQUIRED`` / ``NON_EMPTY``; see the reference's
"Notes added after building a strict emulator".
"""

from __future__ import annotations

import re

from oci.generative_ai_inference import models as _models

# Fields the service requires although the SDK does not mark them [Required].
EXTRA_REQUIRED: dict[str, tuple[str, ...]] = {
    "GenericChatRequest": ("messages",),
    "UserMessage": ("content",),
    "SystemMessage": ("content",),
    "DeveloperMessage": ("content",),
    "ToolMessage": ("content", "toolCallId"),
    "TextContent": ("text",),
    "ImageContent": ("imageUrl",),
    "AudioContent": ("audioUrl",),
    "VideoContent": ("videoUrl",),
    "DocumentContent": ("documentUrl",),
    "FunctionDefinition": ("name",),
    "FunctionCall": ("name", "arguments"),
    "ToolChoiceFunction": ("name",),
    "JsonSchemaResponseFormat": ("jsonSchema",),
    "StaticContent": ("content",),
    "CohereTextContentV2": ("text",),
    "CohereImageContentV2": ("imageUrl",),
    "CohereThinkingContentV2": ("thinking",),
    "CohereDocumentContentV2": ("document",),
    "CohereToolCallV2": ("id", "type", "function"),
    "CohereResponseFormat": ("type",),
    "EmbedTextContent": ("text",),
    "EmbedImageContent": ("imageUrl",),
}
# Lists that must not be empty when present.
NON_EMPTY: dict[str, tuple[str, ...]] = {
    "GenericChatRequest": ("messages",),
    "CohereChatRequestV2": ("messages",),
    "UserMessage": ("content",),
    "CohereUserMessageV2": ("content",),
    "RerankTextDetails": ("documents",),
}

ROOTS = ("ChatDetails", "EmbedTextDetails", "RerankTextDetails")
PREFIX = "Please pass in correct format of request."


class SchemaError(Exception):
    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    @property
    def message(self) -> str:
        return f"{PREFIX} {self.path}: {self.reason}"


class ClassSpec:
    __slots__ = ("name", "fields", "required", "non_empty", "disc_key", "subtypes", "fixed_disc")

    def __init__(self, name: str):
        self.name = name
        self.fields: dict[str, tuple] = {}  # json key -> (type, enum tuple | None)
        self.required: tuple[str, ...] = ()
        self.non_empty: tuple[str, ...] = ()
        self.disc_key: str | None = None  # set on polymorphic bases
        self.subtypes: dict[str, ClassSpec] = {}
        self.fixed_disc: tuple[str, str] | None = None  # (key, value) on concrete subclasses

    def __repr__(self) -> str:
        return f"ClassSpec({self.name})"


_SPECS: dict[str, ClassSpec] = {}
_LIST_RE = re.compile(r"^list\[(.+)\]$")
_DICT_RE = re.compile(r"^dict\(str, (.+)\)$")
_PRIMS = {"str": ("str",), "int": ("int",), "float": ("float",), "bool": ("bool",),
          "object": ("any",), "datetime": ("str",), "date": ("str",)}


def _parse_type(t: str):
    if t in _PRIMS:
        return _PRIMS[t]
    m = _LIST_RE.match(t)
    if m:
        return ("list", _parse_type(m.group(1)))
    m = _DICT_RE.match(t)
    if m:
        return ("dict", _parse_type(m.group(1)))
    return ("model", _spec(t))


def _enum_of(cls, attr: str):
    prop = getattr(cls, attr, None)
    if prop is None or prop.fset is None:
        return None
    for const in prop.fset.__code__.co_consts:
        if isinstance(const, tuple) and const and all(isinstance(c, str) for c in const):
            return frozenset(const)
    return None


def _spec(name: str) -> ClassSpec:
    spec = _SPECS.get(name)
    if spec is not None:
        return spec
    spec = ClassSpec(name)
    _SPECS[name] = spec
    cls = getattr(_models, name)
    inst = cls()
    swagger, amap = inst.swagger_types, inst.attribute_map
    required = []
    for attr, tname in swagger.items():
        key = amap[attr]
        spec.fields[key] = (_parse_type(tname), _enum_of(cls, attr))
        doc = getattr(cls, attr).__doc__ or ""
        if "**[Required]**" in doc:
            required.append(key)
    for key in EXTRA_REQUIRED.get(name, ()):
        if key not in required:
            required.append(key)
    spec.required = tuple(required)
    spec.non_empty = NON_EMPTY.get(name, ())
    own = cls.__dict__.get("get_subtype")
    if own is not None:
        func = own.__func__ if hasattr(own, "__func__") else own
        consts = [c for c in func.__code__.co_consts if isinstance(c, str)][1:]
        key = consts[0]
        spec.disc_key = key
        for value in consts[1:]:
            try:
                sub = cls.get_subtype({key: value})
            except Exception:  # pragma: no cover - defensive
                continue
            if sub != name and hasattr(_models, sub):
                sub_spec = _spec(sub)
                sub_spec.fixed_disc = (key, value)
                spec.subtypes[value] = sub_spec
    return spec


def spec_for(name: str) -> ClassSpec:
    return _spec(name)


for _root in ROOTS:
    _spec(_root)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value) -> str:
    if value is None:
        return "null"
    return {str: "string", bool: "boolean", int: "integer", float: "number", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


def _check(value, t, path: str, enum) -> None:
    kind = t[0]
    if kind == "str":
        if type(value) is not str:
            raise SchemaError(path, f"expected a string, got {_type_name(value)}")
        if enum is not None and value not in enum:
            raise SchemaError(path, f"invalid value {value!r}, must be one of {sorted(enum)}")
    elif kind == "int":
        if type(value) is not int:
            raise SchemaError(path, f"expected an integer, got {_type_name(value)}")
    elif kind == "float":
        if type(value) is not float and type(value) is not int:
            raise SchemaError(path, f"expected a number, got {_type_name(value)}")
    elif kind == "bool":
        if type(value) is not bool:
            raise SchemaError(path, f"expected a boolean, got {_type_name(value)}")
    elif kind == "model":
        _check_object(value, t[1], path)
    elif kind == "list":
        if type(value) is not list:
            raise SchemaError(path, f"expected an array, got {_type_name(value)}")
        inner = t[1]
        for i, item in enumerate(value):
            if item is None:
                raise SchemaError(f"{path}[{i}]", "null is not allowed in an array")
            _check(item, inner, f"{path}[{i}]", enum)
    elif kind == "dict":
        if type(value) is not dict:
            raise SchemaError(path, f"expected an object, got {_type_name(value)}")
        inner = t[1]
        for k, item in value.items():
            if item is not None:
                _check(item, inner, f"{path}.{k}", None)
    # "any": free-form JSON


def _check_object(obj, spec: ClassSpec, path: str) -> None:
    if type(obj) is not dict:
        raise SchemaError(path or "body", f"expected an object, got {_type_name(obj)}")
    if spec.disc_key is not None:
        key = spec.disc_key
        value = obj.get(key)
        if value is None:
            raise SchemaError(_join(path, key), "missing required field")
        sub = spec.subtypes.get(value) if type(value) is str else None
        if sub is None:
            raise SchemaError(_join(path, key), f"invalid value {value!r}, must be one of {sorted(spec.subtypes)}")
        spec = sub
    elif spec.fixed_disc is not None:
        key, expected = spec.fixed_disc
        value = obj.get(key)
        if value is not None and value != expected:
            raise SchemaError(_join(path, key), f"invalid value {value!r}, must be {expected!r}")
    fields = spec.fields
    for key, value in obj.items():
        f = fields.get(key)
        if f is None:
            raise SchemaError(_join(path, key), f"unknown field {key!r}")
        if value is not None:
            _check(value, f[0], _join(path, key), f[1])
    for key in spec.required:
        if obj.get(key) is None:
            raise SchemaError(_join(path, key), "missing required field")
    for key in spec.non_empty:
        if obj.get(key) == []:
            raise SchemaError(_join(path, key), "must not be empty")


def validate(body, root: str) -> None:
    """Validate decoded JSON ``body`` against SDK class ``root``; raise SchemaError."""
    _check_object(body, _SPECS[root] if root in _SPECS else _spec(root), "")
