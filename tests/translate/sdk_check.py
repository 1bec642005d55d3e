"""Check a JSON body against the `oci` SDK's generative_ai_inference model classes.

Every key at every depth must be declared in the class's `attribute_map`, every required attribute
(`**[Required]**` in the SDK docstrings) present, enum-valued strings accepted by the SDK setter,
polymorphic objects resolved through the class's discriminator (`get_subtype`), and no value null (the
SDK never sends nulls). So a translated request that passes cannot carry a key OCI rejects.
"""

from __future__ import annotations

import functools
from typing import Any

import oci.generative_ai_inference.models as models

_PRIMITIVE_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "object": lambda v: True,
    "datetime": lambda v: isinstance(v, str),
}


@functools.cache
def _required(cls: type) -> frozenset[str]:
    out = set()
    for attr in cls().swagger_types:
        prop = getattr(cls, attr, None)
        if isinstance(prop, property) and prop.__doc__ and "**[Required]**" in prop.__doc__:
            out.add(attr)
    return frozenset(out)


def sdk_problems(value: Any, type_name: str, path: str = "$") -> list[str]:
    """Problems found checking `value` as the SDK type `type_name` (e.g. "ChatDetails")."""
    problems: list[str] = []
    _check(value, type_name, path, problems)
    return problems


def _check(value: Any, type_name: str, path: str, problems: list[str]) -> None:
    if value is None:
        problems.append(f"{path}: null (the SDK omits null fields)")
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list for {type_name}")
            return
        inner = type_name[5:-1]
        for i, item in enumerate(value):
            _check(item, inner, f"{path}[{i}]", problems)
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object for {type_name}")
            return
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            _check(item, inner, f"{path}.{key}", problems)
        return
    if type_name in _PRIMITIVE_CHECKS:
        if not _PRIMITIVE_CHECKS[type_name](value):
            problems.append(f"{path}: {value!r} is not a {type_name}")
        return
    cls = getattr(models, type_name, None)
    if cls is None:
        problems.append(f"{path}: unknown SDK type {type_name}")
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object for {type_name}")
        return
    if "get_subtype" in cls.__dict__:  # a polymorphic base: resolve the concrete class once
        try:
            sub = cls.get_subtype(value)
        except KeyError as exc:
            problems.append(f"{path}: missing discriminator {exc} for {type_name}")
            return
        if sub == type_name:
            problems.append(f"{path}: discriminator does not name a subtype of {type_name}")
            return
        cls = getattr(models, sub)
    inst = cls()
    by_json = {json_key: attr for attr, json_key in inst.attribute_map.items()}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            problems.append(f"{path}.{key}: not declared by {cls.__name__}")
            continue
        kind = inst.swagger_types[attr]
        _check(item, kind, f"{path}.{key}", problems)
        if kind == "str" and isinstance(item, str) and getattr(inst, attr) != item:
            # (A subclass's fixed discriminator value, e.g. AudioContent's "AUDIO", is valid even when
            # the base class's enum lists fewer values.)
            try:
                setattr(inst, attr, item)
            except ValueError:
                problems.append(f"{path}.{key}: {item!r} is not an allowed value")
                continue
            if getattr(inst, attr) == "UNKNOWN_ENUM_VALUE":
                problems.append(f"{path}.{key}: {item!r} is not an allowed value")
    for attr in _required(cls):
        if inst.attribute_map[attr] not in value:
            problems.append(f"{path}.{inst.attribute_map[attr]}: required by {cls.__name__} but missing")


def chat_details(chat_request: dict, *, model_id: str = "meta.llama-3.3-70b-instruct") -> dict:
    return {
        "compartmentId": "ocid1.compartment.oc1..test",
        "servingMode": {"servingType": "ON_DEMAND", "modelId": model_id},
        "chatRequest": chat_request,
    }


def assert_sdk_valid(chat_request: dict) -> None:
    problems = sdk_problems(chat_details(chat_request), "ChatDetails")
    assert not problems, "\n".join(problems)
