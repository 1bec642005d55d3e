"""Writes to the catalogue: import and export of the seed gateway's `models.yaml`.

`models.yaml` is a list of `{region, compartment_id, models: {ondemand|embedding|dedicated|datascience:
[{name, model_id | endpoint, description, tool_call, stream_tool_call, multimodal}]}}`. Imports upsert
by public name, so running one twice changes nothing the second time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml
from django.db import transaction

from audit.services import audited_update

from . import bus
from .models import ApiFormat, Deployment, DeploymentKind, PublicModel, Route

KINDS = ("ondemand", "embedding", "dedicated", "datascience")


class ImportError_(ValueError):
    """A models.yaml that cannot be imported; the message says where and why."""


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    disabled: int = 0

    def __str__(self) -> str:
        text = f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}"
        return text + (f", disabled {self.disabled}" if self.disabled else "")


def guess_api_format(model_id: str) -> str:
    m = model_id.lower()
    if m.startswith("cohere.command-a"):
        return ApiFormat.COHEREV2
    if m.startswith("cohere.command"):
        return ApiFormat.COHERE
    return ApiFormat.GENERIC


def capabilities_for(model_id: str, kind: str) -> dict:
    m = model_id.lower()
    if kind == DeploymentKind.EMBEDDING or ".embed" in m:
        return {"supports_chat": False, "supports_embeddings": True, "supports_tools": False,
                "supports_streaming_tools": False, "default_max_tokens": None}
    if ".rerank" in m:
        return {"supports_chat": False, "supports_rerank": True, "supports_tools": False,
                "supports_streaming_tools": False, "default_max_tokens": None}
    caps = {"supports_chat": True}
    if "vision" in m or "llama-4" in m or "gemini" in m or "grok-4" in m or "gpt-5" in m:
        caps["supports_vision"] = True
    if "reasoning" in m or "gpt-oss" in m or "grok-3-mini" in m or "gpt-5" in m or m.startswith("openai.o"):
        caps["supports_reasoning"] = True
    if m.startswith("cohere.command") and not m.startswith("cohere.command-a"):
        caps["max_output_tokens"] = caps["default_max_tokens"] = 4000  # Cohere on-demand fails above it
    return caps


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "-_" else "-" for c in text.lower()).strip("-")
    return out[:120] or "model"


def _entry_fields(kind: str, entry: dict, region: str, compartment: str, where: str) -> dict:
    name = entry.get("name")
    if not name or not isinstance(name, str):
        raise ImportError_(f"{where}: every model needs a 'name'")
    fields: dict = {"kind": kind, "region": region, "compartment_id": compartment,
                    "description": str(entry.get("description") or "").strip()}
    if kind in ("ondemand", "embedding"):
        model_id = entry.get("model_id") or name
        fields.update(model_id=model_id, endpoint_id="", deployment_url="", api_format=guess_api_format(model_id))
        fields.update(capabilities_for(model_id, kind))
    elif kind == "dedicated":
        endpoint = str(entry.get("endpoint") or entry.get("endpoint_id") or "")
        # The seed writes either the endpoint OCID or a URL ending in it.
        endpoint_id = endpoint.rstrip("/").rsplit("/", 1)[-1].removeprefix("https:").lstrip("/")
        if not endpoint_id.startswith("ocid1.generativeaiendpoint"):
            raise ImportError_(f"{where} ({name}): 'endpoint' must be a dedicated endpoint OCID")
        model_id = entry.get("model_id") or ""
        fields.update(model_id=model_id, endpoint_id=endpoint_id, deployment_url="",
                      api_format=entry.get("api_format") or guess_api_format(model_id or name))
        fields.update(capabilities_for(model_id or name, kind))
    else:
        url = str(entry.get("endpoint") or "")
        if not url.startswith(("https://", "http://")):
            raise ImportError_(f"{where} ({name}): 'endpoint' must be the deployment URL")
        fields.update(model_id=entry.get("model_id") or "odsc-llm", endpoint_id="",
                      deployment_url=url.rstrip("/"), api_format=ApiFormat.OPENAI)
    if "tool_call" in entry:
        fields["supports_tools"] = bool(entry["tool_call"])
    if "stream_tool_call" in entry:
        fields["supports_streaming_tools"] = bool(entry["stream_tool_call"])
    if "multimodal" in entry:
        fields["supports_vision"] = bool(entry["multimodal"])
    return fields


def parse_models_yaml(text: str) -> list[tuple[str, dict]]:
    """Return (public name, deployment fields) pairs, validating as it goes."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImportError_(f"not valid YAML: {exc}") from None
    if not isinstance(data, list):
        raise ImportError_("the file must be a list of {region, compartment_id, models} blocks")
    out: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for i, block in enumerate(data):
        where = f"block {i + 1}"
        if not isinstance(block, dict) or not isinstance(block.get("models"), dict):
            raise ImportError_(f"{where}: needs 'region', 'compartment_id' and a 'models' mapping")
        region, compartment = str(block.get("region") or ""), str(block.get("compartment_id") or "")
        for kind, entries in block["models"].items():
            if kind not in KINDS:
                raise ImportError_(f"{where}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
            for j, entry in enumerate(entries or []):
                fields = _entry_fields(kind, entry or {}, region, compartment, f"{where}.{kind}[{j}]")
                name = entry["name"]
                if name in seen:
                    raise ImportError_(f"{where}.{kind}[{j}]: the name {name!r} appears twice")
                seen.add(name)
                out.append((name, fields))
    return out


def parse_openai_gateway_config(text: str) -> list[tuple[str, dict]]:
    """The generic OpenAI gateway's `CONFIG` JSON as (public name, deployment fields) pairs.

    `{"namespaces": {NS: {"base_url", "api_key", "api_version"?, "models": [name | {"name", "deployment"?}]
    | "*"}}}` (the bare namespace mapping, a list of `{"name": NS, ...}` and a `CONFIG=...` env line are
    accepted too). Public names are `NS/model`; namespace `default` gives bare names; `"*"` (or `"*"` in
    the list) makes `NS/*` a wildcard route. `api_key` must be an environment reference (`env:NAME`,
    `${NAME}`, `$NAME`, `os.environ/NAME`): keys are never stored in clear.
    """
    import json

    from .provider_keys import env_reference

    body = text.strip()
    if body.startswith("CONFIG="):
        body = body[len("CONFIG="):].strip().strip("'\"") if body[7:8] in "'\"" else body[len("CONFIG="):]
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ImportError_(f"not valid JSON: {exc}") from None
    namespaces = data.get("namespaces", data) if isinstance(data, dict) else data
    if isinstance(namespaces, list):
        namespaces = {str((n or {}).get("name") or ""): n for n in namespaces}
    if not isinstance(namespaces, dict) or not namespaces:
        raise ImportError_("expected a mapping of namespaces: {\"namespaces\": {\"azure\": {\"base_url\": ...}}}")
    out: list[tuple[str, dict]] = []
    for ns, spec in namespaces.items():
        where = f"namespace {ns!r}"
        if not ns or "/" in ns or "*" in ns or not isinstance(spec, dict):
            raise ImportError_(f"{where}: needs a name without '/' or '*' and an object of settings")
        base_url = str(spec.get("base_url") or spec.get("baseURL") or spec.get("url") or "").rstrip("/")
        if not base_url:
            raise ImportError_(f"{where}: 'base_url' is required")
        key = spec.get("api_key") or spec.get("apiKey") or ""
        key_env = str(spec.get("api_key_env") or "")
        if key and not key_env:
            key_env = env_reference(str(key)) or ""
            if not key_env:
                raise ImportError_(
                    f"{where}: 'api_key' is given in clear; write it as an environment reference (env:NAME, "
                    "${NAME} or os.environ/NAME) and set that variable. Keys are never stored in clear."
                )
        common = {"kind": DeploymentKind.OPENAI_COMPATIBLE, "api_format": ApiFormat.OPENAI, "base_url": base_url,
                  "azure_api_version": str(spec.get("api_version") or spec.get("azure_api_version") or ""),
                  "api_key_env": key_env, "region": str(spec.get("region") or ""), "compartment_id": "",
                  "endpoint_id": "", "deployment_url": "", "description": str(spec.get("description") or "")}
        models = spec.get("models", "*")
        models = [models] if isinstance(models, str) else models
        if not isinstance(models, list) or not models:
            raise ImportError_(f"{where}: 'models' must be a list of model names or \"*\"")
        for i, model in enumerate(models):
            name = model.get("name") if isinstance(model, dict) else model
            if not isinstance(name, str) or not name:
                raise ImportError_(f"{where}: models[{i}] needs a name")
            upstream = (model.get("deployment") or model.get("model") or name) if isinstance(model, dict) else name
            if name == "*":
                if common["azure_api_version"]:
                    raise ImportError_(f"{where}: an Azure namespace cannot be a wildcard (each deployment has "
                                       "its own URL); list its deployments")
                upstream = ""
            public = name if ns == "default" and name != "*" else f"{ns}/{name}"
            out.append((public, {**common, "model_id": upstream, "supports_vision": bool(
                isinstance(model, dict) and model.get("vision"))}))
    names = [n for n, _f in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ImportError_(f"these public names appear twice: {', '.join(dupes)}")
    return out


FORMATS = {"models-yaml": parse_models_yaml, "openai-gateway": parse_openai_gateway_config}


def _deployment_name(public_name: str, fields: dict) -> str:
    return _slug(f"{public_name}-{fields['region']}" if fields["region"] else public_name)


def _validate(deployment: Deployment, public_name: str, unique: bool = True) -> None:
    from django.core.exceptions import ValidationError

    try:
        deployment.full_clean(validate_unique=unique)
    except ValidationError as exc:
        details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        raise ImportError_(f"{public_name}: {details}") from None


@transaction.atomic
def models_import(*, text: str, source: str, prune: bool = False, format: str = "models-yaml") -> ImportSummary:
    """Upsert every entry by public name; with `prune`, disable (never delete) what `source` no longer lists."""
    summary = ImportSummary()
    entries = FORMATS[format](text)
    names = set()
    changed = False
    for public_name, fields in entries:
        names.add(public_name)
        pm = PublicModel.objects.filter(name=public_name).first()
        dep_name = _deployment_name(public_name, fields)
        if pm is None:
            deployment = Deployment(name=dep_name, source=source, **fields)
            _validate(deployment, public_name)
            deployment.save()
            pm = PublicModel.objects.create(name=public_name, description=fields["description"], source=source)
            Route.objects.create(public_model=pm, deployment=deployment)
            summary.created += 1
            changed = True
            continue
        route = pm.routes.select_related("deployment").order_by("priority", "id").first()
        deployment = route.deployment if route else Deployment(name=dep_name, source=source)
        dirty = [k for k, v in fields.items() if getattr(deployment, k) != v]
        if not deployment.enabled or deployment.source != source:
            dirty += ["enabled", "source"]
        pm_dirty = not pm.enabled or pm.description != fields["description"] or pm.source != source
        if not dirty and not pm_dirty and route is not None:
            summary.unchanged += 1
            continue
        for k, v in fields.items():
            setattr(deployment, k, v)
        deployment.enabled, deployment.source = True, source
        _validate(deployment, public_name, unique=False)
        deployment.save()
        if route is None:
            Route.objects.create(public_model=pm, deployment=deployment)
        pm.enabled, pm.description, pm.source = True, fields["description"], source
        pm.save()
        summary.updated += 1
        changed = True
    if prune:
        stale = PublicModel.objects.filter(source=source, enabled=True).exclude(name__in=names)
        # A bulk update sends no signals: audited_update writes the audit entries, the bump is below.
        summary.disabled = audited_update(stale, enabled=False, note=f"pruned: no longer in {source}")
        changed = changed or bool(summary.disabled)
    if changed:
        bus.bump("catalog")
    return summary


def models_export() -> str:
    """The catalogue in models.yaml form (first route of each public model); import(export()) changes nothing."""
    blocks: dict[tuple[str, str], dict[str, list]] = {}
    for pm in PublicModel.objects.filter(enabled=True).prefetch_related("routes__deployment").order_by("name"):
        route = next(iter(sorted(pm.routes.all(), key=lambda r: (r.priority, r.id))), None)
        if route is None:
            continue
        d = route.deployment
        if d.kind == DeploymentKind.OPENAI_COMPATIBLE:
            continue  # providers outside OCI: `export_models --format openai-gateway`
        entry: dict = {"name": pm.name}
        if d.kind in ("ondemand", "embedding"):
            entry["model_id"] = d.model_id
        elif d.kind == "dedicated":
            entry["endpoint"] = d.endpoint_id
            if d.model_id:
                entry["model_id"] = d.model_id
            entry["api_format"] = d.api_format
        else:
            entry["endpoint"] = d.deployment_url
            entry["model_id"] = d.model_id
        entry["description"] = pm.description
        if d.kind != "embedding" and d.supports_chat:
            entry["tool_call"] = d.supports_tools
            entry["stream_tool_call"] = d.supports_streaming_tools
            entry["multimodal"] = d.supports_vision
        blocks.setdefault((d.region, d.compartment_id), {}).setdefault(d.kind, []).append(entry)
    data = [
        {"region": region, "compartment_id": compartment, "models": models}
        for (region, compartment), models in blocks.items()
    ]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def providers_export() -> str:
    """The OpenAI-compatible providers as the generic gateway's CONFIG JSON (keys as environment references).

    Namespaces are the public names' prefixes (`default` for bare names); a key stored encrypted in the
    admin is not exported: its namespace gets `"api_key": "env:<NAMESPACE>_API_KEY"` to fill in.
    """
    import json

    namespaces: dict[str, dict] = {}
    for pm in PublicModel.objects.filter(enabled=True).prefetch_related("routes__deployment").order_by("name"):
        route = next(iter(sorted(pm.routes.all(), key=lambda r: (r.priority, r.id))), None)
        if route is None or route.deployment.kind != DeploymentKind.OPENAI_COMPATIBLE:
            continue
        d = route.deployment
        ns, slash, model = pm.name.partition("/")
        if not slash:
            ns, model = "default", pm.name
        spec = namespaces.setdefault(ns, {"base_url": d.base_url, "models": []})
        if d.azure_api_version:
            spec["api_version"] = d.azure_api_version
        if d.api_key_env:
            spec["api_key"] = f"env:{d.api_key_env}"
        elif d.api_key_encrypted:
            spec["api_key"] = f"env:{re.sub(r'[^A-Z0-9]', '_', ns.upper())}_API_KEY"
        if d.region:
            spec["region"] = d.region
        if model == "*" or d.model_id == model:
            entry = model
        else:
            entry = {"name": model, "deployment": d.model_id}
        if d.supports_vision and model != "*":
            entry = {"name": model, "vision": True} if isinstance(entry, str) else {**entry, "vision": True}
        spec["models"].append(entry)
    return json.dumps({"namespaces": namespaces}, indent=2) + "\n"
