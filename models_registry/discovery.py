"""Discovering what OCI Generative AI offers in a region: on-demand models and dedicated endpoints.

`discover_models()` asks the control plane (ListModels, ListEndpoints, GetModel) with the `oci` SDK's
synchronous client, keeps what the gateway can serve, and returns entries in `models.yaml` form, so
that `discovery_apply()` goes through `models_import` like any other import (same upsert rules, same
cache bump, same audit). When OCI cannot be reached, the shipped `fallback_models.yaml` stands in,
with a warning saying so.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from django.conf import settings

from .endpoints import management_endpoint
from .models import AuthType, CredentialProfile
from .services import ImportSummary, guess_api_format, models_import

log = logging.getLogger("gateway.discovery")

KEPT_CAPABILITIES = ("CHAT", "TEXT_EMBEDDINGS", "TEXT_RERANK")
FALLBACK_FILE = Path(__file__).with_name("fallback_models.yaml")
PAGE_LIMIT = 100  # items per ListModels / ListEndpoints page
MAX_PAGES = 100  # a bound on paging, in case a server keeps returning the same next-page token
TIMEOUT = (5, 30)  # connect, read (seconds)


class DiscoveryError(Exception):
    """OCI could not be asked (credentials, network, permissions); the message says which."""


@dataclass
class DiscoveredModel:
    name: str  # public name to import under: the OCI display name, or the endpoint's display name
    kind: str  # models.yaml kind: ondemand | embedding | dedicated
    model_id: str  # the OCI model name (on demand) or the base model's name (dedicated)
    capability: str  # CHAT | TEXT_EMBEDDINGS | TEXT_RERANK
    api_format: str = ""
    vendor: str = ""
    version: str = ""
    ocid: str = ""
    endpoint_id: str = ""
    time_created: str = ""

    def entry(self) -> dict:
        """This model as a models.yaml entry."""
        vendor = f" ({self.vendor} {self.version})".replace(" )", ")") if self.vendor else ""
        if self.kind == "dedicated":
            entry = {"name": self.name, "endpoint": self.endpoint_id, "model_id": self.model_id,
                     "description": f"Dedicated endpoint serving {self.model_id}"}
            if self.api_format:
                entry["api_format"] = self.api_format
            return entry
        return {"name": self.name, "model_id": self.model_id, "description": f"{self.model_id}{vendor}"}

    def as_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "model_id": self.model_id, "capability": self.capability,
            "api_format": self.api_format, "vendor": self.vendor, "version": self.version, "ocid": self.ocid,
            "endpoint_id": self.endpoint_id, "time_created": self.time_created,
        }


@dataclass
class DiscoveryResult:
    region: str
    compartment_id: str
    models: list[DiscoveredModel] = field(default_factory=list)
    source: str = "oci"  # "oci", or "fallback" when OCI could not be asked
    warnings: list[str] = field(default_factory=list)

    @property
    def import_source(self) -> str:
        """The `source` label of imported entries (what `models_import(prune=True)` compares)."""
        return f"discovery:{self.region or 'default'}"

    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def select(self, names: list[str] | None) -> list[DiscoveredModel]:
        if names is None:
            return list(self.models)
        wanted = set(names)
        return [m for m in self.models if m.name in wanted]

    def models_yaml(self, names: list[str] | None = None) -> str:
        """The chosen models (all by default) as one models.yaml block."""
        kinds: dict[str, list] = {}
        for model in self.select(names):
            kinds.setdefault(model.kind, []).append(model.entry())
        block = {"region": self.region, "compartment_id": self.compartment_id, "models": kinds}
        return yaml.safe_dump([block], sort_keys=False, allow_unicode=True)


# --- talking to OCI --------------------------------------------------------------------------------


def _client(region: str, credential: CredentialProfile | None):
    """A GenerativeAiClient for `region`, signed with `credential` (default profile, else the environment)."""
    import oci

    if credential is None:
        credential = CredentialProfile.objects.filter(is_default=True).first()
    auth_type = credential.auth_type if credential else settings.OCI_AUTH_TYPE
    config_file = os.path.expanduser((credential.config_file if credential else "") or settings.OCI_CONFIG_FILE)
    profile = (credential.config_profile if credential else "") or settings.OCI_CONFIG_PROFILE
    endpoint = management_endpoint(region)
    if not endpoint:
        raise DiscoveryError("no region given: pass a region (e.g. us-chicago-1) or set OCI_REGION")
    kwargs = {
        "service_endpoint": endpoint,
        "retry_strategy": oci.retry.NoneRetryStrategy(),
        "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy(),
        "timeout": TIMEOUT,
    }
    if settings.OCI_GENAI_CA_BUNDLE:
        kwargs["verify"] = settings.OCI_GENAI_CA_BUNDLE
    try:
        if auth_type == AuthType.API_KEY:
            config = oci.config.from_file(config_file, profile)
            oci.config.validate_config(config)
            return oci.generative_ai.GenerativeAiClient(config, **kwargs)
        if auth_type == AuthType.SECURITY_TOKEN:
            config = oci.config.from_file(config_file, profile)
            with open(os.path.expanduser(config["security_token_file"])) as fh:
                token = fh.read().strip()
            key = oci.signer.load_private_key_from_file(config["key_file"], config.get("pass_phrase"))
            signer = oci.auth.signers.SecurityTokenSigner(token, key)
            return oci.generative_ai.GenerativeAiClient(config, signer=signer, **kwargs)
        signers = {
            AuthType.INSTANCE_PRINCIPAL: lambda: oci.auth.signers.InstancePrincipalsSecurityTokenSigner(),
            AuthType.RESOURCE_PRINCIPAL: oci.auth.signers.get_resource_principals_signer,
            AuthType.OKE_WORKLOAD_IDENTITY: oci.auth.signers.get_oke_workload_identity_resource_principal_signer,
        }
        if auth_type not in signers:
            raise DiscoveryError(f"unknown OCI auth type {auth_type!r}")
        return oci.generative_ai.GenerativeAiClient({"region": region}, signer=signers[auth_type](), **kwargs)
    except DiscoveryError:
        raise
    except (oci.exceptions.ConfigFileNotFound, FileNotFoundError) as exc:
        raise DiscoveryError(f"OCI config or key file not found ({exc}); check the credential profile") from None
    except (oci.exceptions.ProfileNotFound, oci.exceptions.InvalidConfig, KeyError) as exc:
        raise DiscoveryError(f"invalid OCI configuration ({exc}); check the credential profile") from None
    except Exception as exc:  # the SDK raises many types while fetching principals' tokens
        raise DiscoveryError(f"cannot build OCI credentials: {type(exc).__name__}: {exc}") from None


def _all_pages(call, compartment_id: str, **kwargs) -> list:
    items: list = []
    page = None
    for _ in range(MAX_PAGES):
        if page:
            kwargs["page"] = page
        response = call(compartment_id, limit=PAGE_LIMIT, **kwargs)
        data = response.data
        items.extend(data.items if hasattr(data, "items") else data)
        page = response.next_page
        if not response.has_next_page or not page:
            break
    return items


def _ask(what: str, fn):
    import oci

    try:
        return fn()
    except oci.exceptions.ServiceError as exc:
        raise DiscoveryError(f"{what}: OCI answered {exc.status} {exc.code}: {exc.message}") from None
    except oci.exceptions.RequestException as exc:
        raise DiscoveryError(f"{what}: cannot reach OCI ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # connection errors come in many types (requests, urllib3, ssl)
        raise DiscoveryError(f"{what}: {type(exc).__name__}: {exc}") from None


def _version_key(version: str | None) -> tuple:
    parts = []
    for piece in (version or "").replace("-", ".").split("."):
        parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    return tuple(parts)


def _as_utc(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _kind_for(capabilities: list[str]) -> tuple[str, str] | None:
    caps = set(capabilities or ())
    if "CHAT" in caps:
        return "ondemand", "CHAT"
    if "TEXT_EMBEDDINGS" in caps:
        return "embedding", "TEXT_EMBEDDINGS"
    if "TEXT_RERANK" in caps:
        return "ondemand", "TEXT_RERANK"
    return None


def select_models(summaries: list, *, now: datetime | None = None) -> list[DiscoveredModel]:
    """Keep servable base models: ACTIVE, not retired on demand, one per display name (the newest)."""
    now = now or datetime.now(UTC)
    best: dict[str, tuple[tuple, object]] = {}
    for s in summaries:
        if (s.lifecycle_state or "") != "ACTIVE" or (s.type or "BASE") != "BASE":
            continue
        retired = _as_utc(s.time_on_demand_retired)
        if retired is not None and retired <= now:
            continue
        if _kind_for(s.capabilities) is None:
            continue
        rank = (_version_key(s.version), _as_utc(s.time_created) or datetime.min.replace(tzinfo=UTC))
        current = best.get(s.display_name)
        if current is None or rank > current[0]:
            best[s.display_name] = (rank, s)
    out = []
    for name in sorted(best):
        s = best[name][1]
        kind, capability = _kind_for(s.capabilities)
        out.append(DiscoveredModel(
            name=name, kind=kind, model_id=name, capability=capability,
            api_format=str(guess_api_format(name)) if capability == "CHAT" else "", vendor=s.vendor or "",
            version=s.version or "", ocid=s.id or "", time_created=str(_as_utc(s.time_created) or ""),
        ))
    return out


def discover_from_oci(*, region: str, compartment_id: str, credential: CredentialProfile | None = None
                      ) -> DiscoveryResult:
    """Ask OCI; raise DiscoveryError when it cannot be asked."""
    if not compartment_id:
        raise DiscoveryError("no compartment given: pass a compartment OCID or set OCI_COMPARTMENT")
    client = _client(region, credential)
    summaries: dict[str, object] = {}
    # One listing per capability: the filter's semantics for several values are not documented.
    for capability in KEPT_CAPABILITIES:
        for s in _ask("ListModels", lambda c=capability: _all_pages(client.list_models, compartment_id,
                                                                     capability=[c])):
            summaries[s.id] = s
    result = DiscoveryResult(region=region, compartment_id=compartment_id,
                             models=select_models(list(summaries.values())))
    taken = set(result.names())
    endpoints = _ask("ListEndpoints", lambda: _all_pages(client.list_endpoints, compartment_id,
                                                         lifecycle_state="ACTIVE"))
    base_models: dict[str, object] = {}
    for ep in endpoints:
        if ep.lifecycle_state != "ACTIVE":
            continue
        if ep.model_id not in base_models:
            base_models[ep.model_id] = _ask(f"GetModel {ep.model_id}",
                                            lambda m=ep.model_id: client.get_model(m).data)
        base = base_models[ep.model_id]
        kind = _kind_for(base.capabilities)
        if kind is None:
            result.warnings.append(f"endpoint {ep.display_name}: its model {base.display_name} is neither chat, "
                                   "embedding nor rerank; skipped")
            continue
        name = ep.display_name if ep.display_name not in taken else f"{ep.display_name}-dedicated"
        taken.add(name)
        result.models.append(DiscoveredModel(
            name=name, kind="dedicated", model_id=base.display_name, capability=kind[1],
            api_format=str(guess_api_format(base.display_name)) if kind[1] == "CHAT" else "",
            vendor=base.vendor or "", version=base.version or "", ocid=base.id or "", endpoint_id=ep.id,
            time_created=str(_as_utc(ep.time_created) or ""),
        ))
    return result


def fallback_result(*, region: str, compartment_id: str, reason: str) -> DiscoveryResult:
    data = yaml.safe_load(FALLBACK_FILE.read_text()) or {}
    result = DiscoveryResult(region=region, compartment_id=compartment_id, source="fallback")
    for kind, names in (data.get("models") or {}).items():
        for name in names or []:
            m = name.lower()
            capability = "TEXT_EMBEDDINGS" if kind == "embedding" else ("TEXT_RERANK" if ".rerank" in m else "CHAT")
            result.models.append(DiscoveredModel(
                name=name, kind=kind, model_id=name, capability=capability,
                api_format=str(guess_api_format(name)) if capability == "CHAT" else "",
                vendor=name.split(".", 1)[0],
            ))
    result.warnings.append(
        f"Discovery failed ({reason}); showing the shipped fallback list ({FALLBACK_FILE.name}), "
        "which may name models this region does not offer."
    )
    return result


def discover_models(*, region: str, compartment_id: str, credential: CredentialProfile | None = None,
                    fallback: bool = True) -> DiscoveryResult:
    """What OCI offers in `region` for `compartment_id`; the fallback list (with a warning) if OCI fails."""
    region = region or settings.OCI_REGION
    compartment_id = compartment_id or settings.OCI_COMPARTMENT
    try:
        return discover_from_oci(region=region, compartment_id=compartment_id, credential=credential)
    except DiscoveryError as exc:
        if not fallback:
            raise
        log.warning("model discovery failed for region %s: %s", region or "(none)", exc)
        return fallback_result(region=region, compartment_id=compartment_id, reason=str(exc))


def discovery_apply(result: DiscoveryResult, *, names: list[str] | None = None) -> ImportSummary:
    """Import the chosen discovered models (all by default) through `models_import`."""
    chosen = result.select(names)
    if names is not None:
        unknown = sorted(set(names) - {m.name for m in chosen})
        if unknown:
            from .services import ImportError_

            raise ImportError_(f"not among the discovered models: {', '.join(unknown)}")
    if not chosen:
        return ImportSummary()
    return models_import(text=result.models_yaml(names), source=result.import_source)
