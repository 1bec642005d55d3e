"""The cached routing table: public model name → ordered deployments.

Built from the database once per catalog version and shared read-only by every request of a process,
so the hot path never queries the registry. In-flight requests keep the snapshot they started with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType

from django.conf import settings

from . import bus, provider_keys
from .endpoints import inference_endpoint
from .models import Deployment, DeploymentKind, PublicModel

log = logging.getLogger("gateway.catalog")


@dataclass(frozen=True, slots=True)
class CredentialSpec:
    name: str
    auth_type: str
    config_file: str
    config_profile: str


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    id: int
    name: str
    kind: str
    region: str
    compartment_id: str
    model_id: str
    endpoint_id: str
    deployment_url: str
    base_url: str  # the inference endpoint (no trailing slash), or the Data Science URL
    api_format: str
    credential: CredentialSpec
    supports_chat: bool
    supports_embeddings: bool
    supports_rerank: bool
    supports_tools: bool
    supports_streaming_tools: bool
    supports_vision: bool
    supports_reasoning: bool
    default_max_tokens: int | None
    max_output_tokens: int | None
    max_tokens_field: str
    param_defaults: MappingProxyType
    unsupported_params: str
    force_non_stream: bool
    drain_on_disconnect: bool
    embed_truncate: str
    price_input_per_m: Decimal
    price_cached_input_per_m: Decimal
    price_output_per_m: Decimal
    price_reasoning_per_m: Decimal
    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 120.0
    idle_timeout_s: float = 120.0
    total_timeout_s: float = 900.0
    max_in_flight: int | None = None
    queue_timeout_s: float = 0.0
    azure_api_version: str = ""
    api_key: str = field(default="", repr=False)  # an OpenAI-compatible provider's key, in clear: never log it
    key_problem: str = ""  # why the provider key could not be obtained (the call then answers 502)

    @property
    def is_dedicated(self) -> bool:
        return self.kind == DeploymentKind.DEDICATED

    @property
    def is_provider(self) -> bool:
        """An OpenAI-compatible provider outside OCI: no OCI signature, its own API key."""
        return self.kind == DeploymentKind.OPENAI_COMPATIBLE

    def serving_mode(self) -> dict:
        if self.is_dedicated:
            return {"servingType": "DEDICATED", "endpointId": self.endpoint_id}
        return {"servingType": "ON_DEMAND", "modelId": self.model_id}


@dataclass(frozen=True, slots=True)
class RouteSpec:
    deployment: DeploymentSpec
    priority: int
    weight: int


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    description: str
    created: int
    deployments: tuple[DeploymentSpec, ...]  # in priority order
    routes: tuple[RouteSpec, ...] = ()
    strategy: str = "weighted"
    fallback: str | None = None
    retry_budget: int = 2
    capabilities: frozenset[str] = field(default=frozenset(), compare=False)  # derived, once per catalog build

    def __post_init__(self) -> None:
        caps = set()
        for d in self.deployments:
            caps.update(
                name
                for name, on in (
                    ("chat", d.supports_chat),
                    ("embeddings", d.supports_embeddings),
                    ("rerank", d.supports_rerank),
                )
                if on
            )
        object.__setattr__(self, "capabilities", frozenset(caps))


_DERIVED_LIMIT = 10_000  # distinct names served through namespace wildcards, kept per catalog version


@dataclass(frozen=True)
class Catalog:
    models: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    _derived: dict = field(default_factory=dict, compare=False, repr=False)

    def lookup(self, name: str) -> ModelEntry | None:
        """An exact public name first (names may contain '/'); `default/x` is `x`; then `ns/*` for `ns/x`."""
        entry = self.models.get(name)
        if entry is not None:
            return entry
        if name.startswith("default/"):
            return self.models.get(name[len("default/"):])
        namespace, slash, rest = name.partition("/")
        if not slash or not rest or namespace == "*":
            return None
        derived = self._derived.get(name)
        if derived is None:
            wildcard = self.models.get(f"{namespace}/*")
            if wildcard is None:
                return None
            derived = _with_upstream_model(wildcard, name, rest)
            if len(self._derived) >= _DERIVED_LIMIT:
                self._derived.clear()
            self._derived[name] = derived
        return derived

    def listed(self):
        """(name, entry) of the models /v1/models shows: every one but the namespace wildcards."""
        return ((name, e) for name, e in sorted(self.models.items()) if not name.endswith("/*"))


def _with_upstream_model(wildcard: ModelEntry, name: str, upstream_model: str) -> ModelEntry:
    """The wildcard's routes, each calling its deployment with the client's model name."""
    routes = tuple(replace(r, deployment=replace(r.deployment, model_id=upstream_model)) for r in wildcard.routes)
    return replace(wildcard, name=name, deployments=tuple(r.deployment for r in routes), routes=routes)


def _credential(deployment: Deployment, default) -> CredentialSpec:
    profile = deployment.credential or default
    if profile is None:
        return CredentialSpec(
            "environment", settings.OCI_AUTH_TYPE, settings.OCI_CONFIG_FILE, settings.OCI_CONFIG_PROFILE
        )
    return CredentialSpec(
        profile.name,
        profile.auth_type,
        profile.config_file or settings.OCI_CONFIG_FILE,
        profile.config_profile or settings.OCI_CONFIG_PROFILE,
    )


def _provider_key(d: Deployment) -> tuple[str, str]:
    """(key, problem) of an OpenAI-compatible deployment; the problem is logged once per catalog build."""
    try:
        return provider_keys.resolve(encrypted=d.api_key_encrypted, env_name=d.api_key_env), ""
    except provider_keys.KeyUnavailable as exc:
        log.warning("deployment %s: its API key is unavailable: %s", d.name, exc)
        return "", str(exc)


def deployment_spec(d: Deployment, default_profile=None) -> DeploymentSpec:
    region = d.region or settings.OCI_REGION
    api_key = key_problem = ""
    if d.kind == DeploymentKind.OPENAI_COMPATIBLE:
        region = d.region  # outside OCI: no default region
        base_url = d.base_url.rstrip("/")
        api_key, key_problem = _provider_key(d)
    elif d.kind == DeploymentKind.DATASCIENCE:
        base_url = d.deployment_url.rstrip("/")
    else:
        base_url = (d.endpoint_override or inference_endpoint(region)).rstrip("/")
    return DeploymentSpec(
        id=d.id,
        name=d.name,
        kind=d.kind,
        region=region,
        compartment_id=d.compartment_id or settings.OCI_COMPARTMENT,
        model_id=d.model_id,
        endpoint_id=d.endpoint_id,
        deployment_url=d.deployment_url,
        base_url=base_url,
        api_format=d.api_format,
        credential=_credential(d, default_profile),
        supports_chat=d.supports_chat,
        supports_embeddings=d.supports_embeddings,
        supports_rerank=d.supports_rerank,
        supports_tools=d.supports_tools,
        supports_streaming_tools=d.supports_streaming_tools,
        supports_vision=d.supports_vision,
        supports_reasoning=d.supports_reasoning,
        default_max_tokens=d.default_max_tokens,
        max_output_tokens=d.max_output_tokens,
        max_tokens_field=d.max_tokens_field,
        param_defaults=MappingProxyType(dict(d.param_defaults or {})),
        unsupported_params=d.unsupported_params,
        force_non_stream=d.force_non_stream,
        drain_on_disconnect=d.drain_on_disconnect,
        embed_truncate=d.embed_truncate,
        price_input_per_m=d.price_input_per_m,
        price_cached_input_per_m=d.price_cached_input_per_m,
        price_output_per_m=d.price_output_per_m,
        price_reasoning_per_m=d.price_reasoning_per_m,
        connect_timeout_s=d.connect_timeout_s,
        first_byte_timeout_s=d.first_byte_timeout_s or (300.0 if d.supports_reasoning else 120.0),
        idle_timeout_s=d.idle_timeout_s,
        total_timeout_s=d.total_timeout_s,
        max_in_flight=d.max_in_flight,
        queue_timeout_s=d.queue_timeout_s,
        azure_api_version=d.azure_api_version,
        api_key=api_key,
        key_problem=key_problem,
    )


def load_catalog() -> Catalog:
    from .models import CredentialProfile

    default_profile = CredentialProfile.objects.filter(is_default=True).first()
    entries: dict[str, ModelEntry] = {}
    public_models = (
        PublicModel.objects.filter(enabled=True)
        .select_related("fallback")
        .prefetch_related("routes__deployment__credential")
    )
    for pm in public_models:
        routes = sorted(
            (r for r in pm.routes.all() if r.enabled and r.deployment.enabled),
            key=lambda r: (r.priority, r.id),
        )
        route_specs = tuple(
            RouteSpec(deployment_spec(r.deployment, default_profile), r.priority, max(r.weight, 1)) for r in routes
        )
        if route_specs:
            entries[pm.name] = ModelEntry(
                pm.name,
                pm.description,
                int(pm.created_at.timestamp()),
                deployments=tuple(r.deployment for r in route_specs),
                routes=route_specs,
                strategy=pm.strategy,
                fallback=pm.fallback.name if pm.fallback_id else None,
                retry_budget=pm.retry_budget,
            )
    return Catalog(MappingProxyType(entries))


catalog_cache = bus.VersionedValue("catalog", load_catalog)


async def get_catalog() -> Catalog:
    return await catalog_cache.get()
