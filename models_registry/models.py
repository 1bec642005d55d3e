"""The OCI model catalogue: credentials, deployments, and the public names clients use.

A *deployment* is one place a model can be called (an on-demand model in a region, a dedicated
endpoint, a Data Science deployment). A *public model* is the name clients send as `model`; its
*routes* list the deployments that serve it, in order.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models


class AuthType(models.TextChoices):
    API_KEY = "API_KEY", "API key (config file)"
    SECURITY_TOKEN = "SECURITY_TOKEN", "Session token (oci session authenticate)"
    INSTANCE_PRINCIPAL = "INSTANCE_PRINCIPAL", "Instance principal"
    RESOURCE_PRINCIPAL = "RESOURCE_PRINCIPAL", "Resource principal"
    OKE_WORKLOAD_IDENTITY = "OKE_WORKLOAD_IDENTITY", "OKE workload identity"


class CredentialProfile(models.Model):
    """How the gateway signs requests to OCI. Secrets stay in the config file, never in the database."""

    name = models.SlugField(max_length=64, unique=True)
    auth_type = models.CharField(max_length=32, choices=AuthType.choices, default=AuthType.API_KEY)
    config_file = models.CharField(
        max_length=500, blank=True, help_text="Path of the OCI config file; blank means OCI_CONFIG_FILE."
    )
    config_profile = models.CharField(
        max_length=100, blank=True, help_text="Profile inside the config file; blank means OCI_CONFIG_PROFILE."
    )
    is_default = models.BooleanField(default=False, help_text="Used by deployments that name no profile.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DeploymentKind(models.TextChoices):
    ONDEMAND = "ondemand", "On-demand model"
    EMBEDDING = "embedding", "On-demand embedding model"
    DEDICATED = "dedicated", "Dedicated AI cluster endpoint"
    DATASCIENCE = "datascience", "Data Science model deployment"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible provider (vLLM, Azure OpenAI, another gateway)"


class ApiFormat(models.TextChoices):
    GENERIC = "GENERIC", "GENERIC (Meta, xAI, Google, OpenAI, imported)"
    COHERE = "COHERE", "COHERE (Command R family)"
    COHEREV2 = "COHEREV2", "COHEREV2 (Command A family)"
    OPENAI = "OPENAI", "OpenAI passthrough (Data Science vLLM, OCI /openai/v1)"


class MaxTokensField(models.TextChoices):
    AUTO = "", "Automatic (maxCompletionTokens for gpt-5 and o-series)"
    MAX_TOKENS = "maxTokens", "maxTokens"
    MAX_COMPLETION_TOKENS = "maxCompletionTokens", "maxCompletionTokens"


class UnsupportedParams(models.TextChoices):
    DROP = "drop", "Drop them and list them in x-gateway-dropped-params"
    REJECT = "reject", "Reject the request with 400"


class Truncate(models.TextChoices):
    NONE = "NONE", "NONE (error on over-long input)"
    START = "START", "START"
    END = "END", "END"


class Deployment(models.Model):
    name = models.SlugField(max_length=120, unique=True, help_text="Internal name, e.g. llama-3.3-chicago.")
    kind = models.CharField(max_length=24, choices=DeploymentKind.choices, default=DeploymentKind.ONDEMAND)
    credential = models.ForeignKey(
        CredentialProfile,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="Blank means the default profile (or the environment's OCI settings).",
    )
    region = models.CharField(max_length=40, blank=True, help_text="e.g. us-chicago-1; blank means OCI_REGION.")
    compartment_id = models.CharField(
        max_length=255, blank=True, help_text="Compartment OCID; blank means OCI_COMPARTMENT."
    )
    model_id = models.CharField(
        max_length=255, blank=True,
        help_text="OCI model name or OCID (on-demand and embedding kinds); the upstream model name (or "
        "Azure deployment name) of an OpenAI-compatible provider.",
    )
    endpoint_id = models.CharField(
        max_length=255, blank=True, help_text="Dedicated endpoint OCID (ocid1.generativeaiendpoint...)."
    )
    deployment_url = models.URLField(
        max_length=500, blank=True, help_text="Data Science deployment URL ending in /predict."
    )
    base_url = models.URLField(
        max_length=500, blank=True,
        help_text="OpenAI-compatible providers: the base URL, e.g. https://vllm.intranet/v1, or the Azure "
        "resource https://NAME.openai.azure.com (with an API version below).",
    )
    azure_api_version = models.CharField(
        max_length=32, blank=True,
        help_text="Azure OpenAI only, e.g. 2024-10-21: calls go to /openai/deployments/<model id>/… with an "
        "api-key header.",
    )
    api_key_env = models.CharField(
        max_length=100, blank=True,
        help_text="OpenAI-compatible providers: the environment variable holding the API key (wins over a "
        "stored key).",
    )
    api_key_encrypted = models.TextField(
        blank=True, editable=False, help_text="The provider API key, encrypted with GATEWAY_ENCRYPTION_KEY."
    )
    endpoint_override = models.URLField(
        max_length=500, blank=True, help_text="Replaces the inference endpoint for this deployment only."
    )
    api_format = models.CharField(max_length=16, choices=ApiFormat.choices, default=ApiFormat.GENERIC)
    supports_chat = models.BooleanField(default=True)
    supports_embeddings = models.BooleanField(default=False)
    supports_rerank = models.BooleanField(default=False)
    supports_tools = models.BooleanField(default=True)
    supports_streaming_tools = models.BooleanField(default=True)
    supports_vision = models.BooleanField(default=False)
    supports_reasoning = models.BooleanField(default=False)
    default_max_tokens = models.PositiveIntegerField(
        null=True, blank=True, default=4096, help_text="Sent when the client names no output length."
    )
    max_output_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Cap on output length; larger client values are lowered to it."
    )
    max_tokens_field = models.CharField(
        max_length=24, choices=MaxTokensField.choices, blank=True, default=MaxTokensField.AUTO
    )
    param_defaults = models.JSONField(
        default=dict, blank=True, help_text='Sampling defaults, e.g. {"temperature": 0.3}.'
    )
    unsupported_params = models.CharField(
        max_length=8, choices=UnsupportedParams.choices, default=UnsupportedParams.DROP
    )
    force_non_stream = models.BooleanField(
        default=False, help_text="Serve streamed requests from a non-streamed upstream call."
    )
    drain_on_disconnect = models.BooleanField(
        default=False, help_text="Keep reading upstream after a client leaves, to bill OCI's own usage."
    )
    embed_truncate = models.CharField(max_length=8, choices=Truncate.choices, default=Truncate.END)
    connect_timeout_s = models.FloatField(default=10)
    first_byte_timeout_s = models.FloatField(
        null=True, blank=True, help_text="Blank: 300 s for reasoning-capable deployments, 120 s otherwise."
    )
    idle_timeout_s = models.FloatField(default=120, help_text="Longest silence between stream events.")
    total_timeout_s = models.FloatField(default=900, help_text="Whole call; non-streaming calls stop at 600 s.")
    max_in_flight = models.PositiveIntegerField(
        null=True, blank=True, help_text="Cap on concurrent requests (dedicated clusters); blank: no cap."
    )
    queue_timeout_s = models.FloatField(
        default=0, help_text="When at the cap: wait this long for a slot (0: answer 429 at once)."
    )
    price_input_per_m = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    price_cached_input_per_m = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    price_output_per_m = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    price_reasoning_per_m = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    source = models.CharField(
        max_length=255, blank=True, help_text="Where this entry came from (an import file), for --prune."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.kind in (DeploymentKind.ONDEMAND, DeploymentKind.EMBEDDING) and not self.model_id:
            errors["model_id"] = "On-demand deployments need the OCI model id, e.g. meta.llama-3.3-70b-instruct."
        if self.kind == DeploymentKind.DEDICATED and not self.endpoint_id.startswith("ocid1.generativeaiendpoint"):
            errors["endpoint_id"] = "Dedicated deployments need the endpoint OCID (ocid1.generativeaiendpoint...)."
        if self.kind == DeploymentKind.DATASCIENCE:
            if not self.deployment_url:
                errors["deployment_url"] = "Data Science deployments need the deployment URL ending in /predict."
            if self.api_format != ApiFormat.OPENAI:
                errors["api_format"] = "Data Science deployments speak the OpenAI format: choose OpenAI passthrough."
        if self.kind == DeploymentKind.OPENAI_COMPATIBLE:
            if not self.base_url:
                errors["base_url"] = "OpenAI-compatible deployments need the provider's base URL."
            if self.api_format != ApiFormat.OPENAI:
                errors["api_format"] = "OpenAI-compatible providers speak the OpenAI format: choose OpenAI passthrough."
            if self.azure_api_version and not self.model_id:
                errors["model_id"] = "Azure OpenAI needs the deployment name as the model id."
        if self.api_key_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            errors["api_key_env"] = "Give the name of an environment variable, e.g. AZURE_OPENAI_API_KEY."
        if (
            self.default_max_tokens
            and self.max_output_tokens
            and self.default_max_tokens > self.max_output_tokens
        ):
            errors["default_max_tokens"] = "The default output length cannot exceed the cap; lower it or raise the cap."
        if not isinstance(self.param_defaults, dict):
            errors["param_defaults"] = 'Give a JSON object such as {"temperature": 0.3}.'
        from .upstream_urls import validate_upstream_url

        for name in ("deployment_url", "endpoint_override", "base_url"):
            try:
                validate_upstream_url(getattr(self, name))
            except ValidationError as exc:
                errors[name] = exc.messages[0]
        if errors:
            raise ValidationError(errors)


class RoutingStrategy(models.TextChoices):
    WEIGHTED = "weighted", "Weighted random"
    LEAST_IN_FLIGHT = "least_in_flight", "Fewest requests in flight"
    LOWEST_LATENCY = "lowest_latency", "Lowest recent latency"


class PublicModel(models.Model):
    """The name clients send as `model`."""

    name = models.CharField(
        max_length=200, unique=True,
        help_text="May contain '/', e.g. team/llama. A namespace wildcard such as azure/* passes any "
        "azure/<name> not listed on its own to its deployments as model <name>.",
    )
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    strategy = models.CharField(
        max_length=20, choices=RoutingStrategy.choices, default=RoutingStrategy.WEIGHTED,
        help_text="How to choose among routes of the same priority.",
    )
    fallback = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Another public model to use when every route of this one has failed (e.g. a smaller model).",
    )
    retry_budget = models.PositiveSmallIntegerField(
        default=2, help_text="Retries (on 429, 5xx, connection errors, timeouts) before giving up."
    )
    source = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_wildcard(self) -> bool:
        return self.name.endswith("/*")

    def clean(self) -> None:
        if "*" in self.name and not re.fullmatch(r"[^*/]+/\*", self.name):
            raise ValidationError(
                {"name": "'*' is only allowed as a namespace wildcard: the whole name after one '/', e.g. azure/*."}
            )
        if self.name.startswith("default/"):
            raise ValidationError({"name": "default/ is implied: name the model without it."})


class Route(models.Model):
    public_model = models.ForeignKey(PublicModel, on_delete=models.CASCADE, related_name="routes")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="routes")
    priority = models.PositiveSmallIntegerField(default=0, help_text="Lower first; higher only as fallback.")
    weight = models.PositiveSmallIntegerField(default=1)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["public_model", "priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["public_model", "deployment"], name="route_unique_deployment")
        ]

    def __str__(self) -> str:
        return f"{self.public_model} → {self.deployment}"


class CacheVersion(models.Model):
    """One row per cache namespace (catalog, keys); bumped in the same transaction as every write.

    See `models_registry/bus.py`: every process compares these versions with what its in-memory
    caches were built from.
    """

    namespace = models.CharField(max_length=32, primary_key=True)
    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.namespace}@{self.version}"
