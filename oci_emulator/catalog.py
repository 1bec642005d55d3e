"""The models, dedicated endpoints and model deployments the emulator knows.

Model ids come from the wire-protocol reference (section 9). Each model is served under its name and
under a deterministic OCID. ``list_model_summaries`` returns what ``GET /20231130/models`` lists:
like the real service it repeats a display name several times (older versions, fine-tune base
entries, retired versions), so a gateway has to de-duplicate and filter.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

REGION = "us-chicago-1"
DEFAULT_COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaaemulatorcompartment000000000000000000000000000"
TIME_CREATED = "2025-01-15T10:00:00.000Z"
PAST = "2025-06-01T00:00:00.000Z"
FUTURE = "2030-01-01T00:00:00.000Z"


def _suffix(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return base64.b32encode(digest).decode().lower().rstrip("=")[:52]


def model_ocid(name: str, version: str, kind: str = "base") -> str:
    return f"ocid1.generativeaimodel.oc1.{REGION}.amaaaaaa{_suffix(f'{name}/{version}/{kind}')}"


def endpoint_ocid(name: str) -> str:
    return f"ocid1.generativeaiendpoint.oc1.{REGION}.amaaaaaa{_suffix('endpoint/' + name)}"


def deployment_ocid(name: str) -> str:
    return f"ocid1.datasciencemodeldeployment.oc1.{REGION}.amaaaaaa{_suffix('deployment/' + name)}"


@dataclass
class ModelInfo:
    name: str
    vendor: str
    capabilities: tuple[str, ...]
    api_formats: tuple[str, ...] = ()  # chat formats accepted; empty for embed/rerank models
    version: str = "1.0.0"
    reasoning: bool = False  # emits reasoning content (GENERIC reasoningContent / COHEREV2 THINKING)
    vision: bool = False  # accepts image content
    on_demand: bool = True  # False: dedicated endpoints only
    openai_compatible: bool = False  # served by /openai/v1/chat/completions
    embed_dims: tuple[int, ...] = ()  # allowed outputDimensions (first is the default when not settable)
    embed_default_dim: int = 0
    embed_max_tokens: int = 0  # per input (text-only v3 models: 512)
    embed_images: bool = False
    rejected_params: dict[str, str] = field(default_factory=dict)  # chatRequest key -> 400 message
    ocid: str = ""

    def __post_init__(self) -> None:
        if not self.ocid:
            self.ocid = model_ocid(self.name, self.version)

    @property
    def is_chat(self) -> bool:
        return "CHAT" in self.capabilities

    @property
    def is_embed(self) -> bool:
        return "TEXT_EMBEDDINGS" in self.capabilities

    @property
    def is_rerank(self) -> bool:
        return "TEXT_RERANK" in self.capabilities


_GPT5_MAX_TOKENS = (
    "Unsupported parameter: 'maxTokens' is not supported with this model. Use 'maxCompletionTokens' instead."
)
_GROK_REASONING = "Argument not supported on this model: reasoningEffort"


def _chat(name, vendor, fmt="GENERIC", **kw) -> ModelInfo:
    caps = ("CHAT", "IMAGE_TEXT_TO_TEXT") if kw.get("vision") else ("CHAT",)
    return ModelInfo(name=name, vendor=vendor, capabilities=caps, api_formats=(fmt,), **kw)


MODELS: list[ModelInfo] = [
    # Meta (GENERIC)
    _chat("meta.llama-3.3-70b-instruct", "meta", openai_compatible=True),
    _chat("meta.llama-4-maverick-17b-128e-instruct-fp8", "meta", vision=True, openai_compatible=True),
    _chat("meta.llama-4-scout-17b-16e-instruct", "meta", vision=True, openai_compatible=True),
    _chat("meta.llama-3.2-90b-vision-instruct", "meta", vision=True, openai_compatible=True),
    _chat("meta.llama-3.1-405b-instruct", "meta", openai_compatible=True),
    # xAI (GENERIC)
    _chat("xai.grok-4", "xai", vision=True, openai_compatible=True,
          rejected_params={"reasoningEffort": _GROK_REASONING}),
    _chat("xai.grok-3", "xai", openai_compatible=True),
    _chat("xai.grok-3-mini", "xai", reasoning=True, openai_compatible=True),
    _chat("xai.grok-4-fast-reasoning", "xai", reasoning=True, vision=True, openai_compatible=True),
    _chat("xai.grok-code-fast-1", "xai", reasoning=True, openai_compatible=True),
    # OpenAI (GENERIC)
    _chat("openai.gpt-oss-120b", "openai", reasoning=True, openai_compatible=True),
    _chat("openai.gpt-oss-20b", "openai", reasoning=True, openai_compatible=True),
    _chat("openai.gpt-5", "openai", reasoning=True, vision=True, openai_compatible=True,
          rejected_params={"maxTokens": _GPT5_MAX_TOKENS}),
    # Google (GENERIC)
    _chat("google.gemini-2.5-flash", "google", vision=True),
    _chat("google.gemini-2.5-pro", "google", vision=True),
    # Cohere chat
    _chat("cohere.command-r-08-2024", "cohere", "COHERE", version="1.7"),
    _chat("cohere.command-r-plus-08-2024", "cohere", "COHERE", version="1.6"),
    _chat("cohere.command-a-03-2025", "cohere", "COHEREV2", version="1.0"),
    _chat("cohere.command-a-vision", "cohere", "COHEREV2", version="1.0", vision=True),
    _chat("cohere.command-a-reasoning", "cohere", "COHEREV2", version="1.0", reasoning=True),
    # Cohere embed
    ModelInfo("cohere.embed-v4.0", "cohere", ("TEXT_EMBEDDINGS",), version="4.0",
              embed_dims=(256, 512, 1024, 1536), embed_default_dim=1536, embed_max_tokens=128000,
              embed_images=True),
    ModelInfo("cohere.embed-english-v3.0", "cohere", ("TEXT_EMBEDDINGS",), version="3.0",
              embed_default_dim=1024, embed_max_tokens=512),
    ModelInfo("cohere.embed-multilingual-v3.0", "cohere", ("TEXT_EMBEDDINGS",), version="3.0",
              embed_default_dim=1024, embed_max_tokens=512),
    ModelInfo("cohere.embed-english-light-v3.0", "cohere", ("TEXT_EMBEDDINGS",), version="3.0",
              embed_default_dim=384, embed_max_tokens=512),
    ModelInfo("cohere.embed-multilingual-light-v3.0", "cohere", ("TEXT_EMBEDDINGS",), version="3.0",
              embed_default_dim=384, embed_max_tokens=512),
    ModelInfo("cohere.embed-english-image-v3.0", "cohere", ("TEXT_EMBEDDINGS",), version="3.0",
              embed_default_dim=1024, embed_max_tokens=512, embed_images=True),
    # Cohere rerank
    ModelInfo("cohere.rerank-v4.0-fast", "cohere", ("TEXT_RERANK",), version="4.0"),
    ModelInfo("cohere.rerank.v3-5", "cohere", ("TEXT_RERANK",), version="3.5", on_demand=False),
]

# Entries ListModels returns besides the primary ones (duplicate display names, retired models).
# Each: (name, version, capabilities, kind, retired_on_demand, lifecycleState)
_EXTRA_LISTINGS = [
    ("cohere.command-r-08-2024", "1.7", ("FINE_TUNE",), "finetune", False, "ACTIVE"),
    ("cohere.command-r-08-2024", "1.2", ("CHAT",), "base", True, "ACTIVE"),
    ("meta.llama-3.3-70b-instruct", "1.0.0", ("FINE_TUNE",), "finetune", False, "ACTIVE"),
    ("cohere.embed-english-v3.0", "2.9", ("TEXT_EMBEDDINGS",), "base", True, "ACTIVE"),
    ("meta.llama-3.1-70b-instruct", "1.0.0", ("CHAT",), "base", True, "ACTIVE"),
    ("cohere.command", "15.6", ("TEXT_GENERATION", "TEXT_SUMMARIZATION", "FINE_TUNE"), "base", True, "ACTIVE"),
    ("meta.llama-2-70b-chat", "1.0.0", ("CHAT",), "base", True, "DELETED"),
]


@dataclass
class EndpointInfo:
    name: str
    model_name: str
    id: str = ""
    compartment_id: str = DEFAULT_COMPARTMENT

    def __post_init__(self) -> None:
        if not self.id:
            self.id = endpoint_ocid(self.name)


ENDPOINTS: list[EndpointInfo] = [
    EndpointInfo("emulator-llama-3-3-70b", "meta.llama-3.3-70b-instruct"),
    EndpointInfo("emulator-command-r", "cohere.command-r-08-2024"),
    EndpointInfo("emulator-command-a", "cohere.command-a-03-2025"),
    EndpointInfo("emulator-embed-v4", "cohere.embed-v4.0"),
    EndpointInfo("emulator-rerank-v3-5", "cohere.rerank.v3-5"),
]

# Data Science model deployments serving an OpenAI-compatible (vLLM) container.
DEPLOYMENTS: dict[str, str] = {deployment_ocid("emulator-vllm"): "odsc-llm"}
DEFAULT_DEPLOYMENT = next(iter(DEPLOYMENTS))


class Catalog:
    """Lookup tables over MODELS / ENDPOINTS / extra listings."""

    def __init__(self, models=None, endpoints=None, deployments=None):
        self.models: list[ModelInfo] = list(models or MODELS)
        self.endpoints: list[EndpointInfo] = list(endpoints or ENDPOINTS)
        self.deployments: dict[str, str] = dict(deployments or DEPLOYMENTS)
        self.by_name = {m.name: m for m in self.models}
        self.by_ocid = {m.ocid: m for m in self.models}
        self.endpoints_by_id = {e.id: e for e in self.endpoints}
        self.retired: dict[str, str] = {}  # ocid or name -> display name, for retired listings
        self.summaries = self._build_summaries()

    def resolve_model(self, model_id: str) -> ModelInfo | None:
        return self.by_name.get(model_id) or self.by_ocid.get(model_id)

    def resolve_endpoint(self, endpoint_id: str) -> tuple[EndpointInfo, ModelInfo] | None:
        ep = self.endpoints_by_id.get(endpoint_id)
        if ep is None:
            return None
        return ep, self.by_name[ep.model_name]

    def _summary(self, name, version, caps, kind, retired, vendor, state="ACTIVE") -> dict:
        ocid = model_ocid(name, version, kind)
        primary = self.by_name.get(name)
        if primary is not None and kind == "base" and not retired and primary.version == version:
            ocid = primary.ocid
        s = {
            "id": ocid,
            "compartmentId": None,
            "capabilities": list(caps),
            "lifecycleState": state,
            "lifecycleDetails": None,
            "displayName": name,
            "vendor": vendor,
            "version": version,
            "timeCreated": TIME_CREATED,
            "baseModelId": None,
            "type": "BASE",
            "isLongTermSupported": False,
            "timeDeprecated": PAST if retired else None,
            "timeOnDemandRetired": PAST if retired else None,
            "timeDedicatedRetired": PAST if retired else FUTURE,
            "freeformTags": {},
            "definedTags": {},
            "systemTags": {},
        }
        if primary is not None and not primary.on_demand and not retired:
            s["timeOnDemandRetired"] = PAST  # dedicated-only model: never served on demand
        if retired:
            self.retired[ocid] = name
        return s

    def _build_summaries(self) -> list[dict]:
        out = [self._summary(m.name, m.version, m.capabilities, "base", False, m.vendor) for m in self.models]
        for name, version, caps, kind, retired, state in _EXTRA_LISTINGS:
            out.append(self._summary(name, version, caps, kind, retired, name.split(".", 1)[0], state))
            if retired and name not in self.by_name:
                self.retired[name] = name
        # Stable, deterministic, not grouped by name (the real listing interleaves duplicates).
        out.sort(key=lambda s: hashlib.md5(s["id"].encode()).hexdigest())
        return out

    def model_resource(self, model_id: str) -> dict | None:
        """GetModel body for a model OCID (or name)."""
        for s in self.summaries:
            if s["id"] == model_id or (s["displayName"] == model_id and s["lifecycleState"] == "ACTIVE"):
                body = dict(s)
                body.update({"description": f"{s['displayName']} (emulated)", "timeUpdated": TIME_CREATED,
                             "previousState": None})
                return body
        return None

    def endpoint_summary(self, ep: EndpointInfo) -> dict:
        return {
            "id": ep.id,
            "displayName": ep.name,
            "description": f"Emulated dedicated endpoint for {ep.model_name}",
            "modelId": self.by_name[ep.model_name].ocid,
            "compartmentId": ep.compartment_id,
            "dedicatedAiClusterId": f"ocid1.generativeaidedicatedaicluster.oc1.{REGION}.amaaaaaa"
            + _suffix("cluster/" + ep.name),
            "timeCreated": TIME_CREATED,
            "timeUpdated": TIME_CREATED,
            "lifecycleState": "ACTIVE",
            "lifecycleDetails": None,
            "contentModerationConfig": {"isEnabled": False},
            "freeformTags": {},
            "definedTags": {},
            "systemTags": {},
        }
