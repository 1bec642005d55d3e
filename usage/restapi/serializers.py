"""Shapes of the management API. Secrets appear only in `ApiKeyWithSecretSerializer`, once."""

from __future__ import annotations

import copy
import json

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.fields import get_error_detail

from models_registry.models import CredentialProfile, Deployment, PublicModel, Route
from models_registry.validation import credential_errors, validate_compartment, validate_region

from ..models import LIMIT_FIELDS, ApiKey, Team, UsageRecord
from ..operations import validate_future, validate_model_names

MAX_SMALL = 32767  # PositiveSmallIntegerField's portable maximum
MAX_INT = 2147483647


def _drf(exc: DjangoValidationError) -> serializers.ValidationError:
    return serializers.ValidationError(get_error_detail(exc))


def _validate_with(fn, value, field: str):
    try:
        return fn(value, field=field)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict.get(field, exc.messages)) from None


class ModelNamesField(serializers.ListField):
    def __init__(self, **kwargs):
        kwargs.setdefault("child", serializers.CharField(max_length=200))
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 500)
        kwargs.setdefault("help_text", "Public model names; empty means every model.")
        super().__init__(**kwargs)


class JsonObjectField(serializers.DictField):
    """A JSON object (labels, sampling defaults). NUL characters are refused: PostgreSQL cannot store them."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", 'A JSON object, e.g. {"cost_centre": "4711"}.')
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if "\\u0000" in json.dumps(value):
            raise serializers.ValidationError("NUL characters (\\u0000) are not allowed in keys or values.")
        return value


# --- teams and keys --------------------------------------------------------------------------------


# Explicit bounds: the database's own integer range differs between SQLite and PostgreSQL.
LIMIT_KWARGS = {
    "rpm_limit": {"min_value": 1, "max_value": MAX_INT},
    "tpm_limit": {"min_value": 1, "max_value": MAX_INT},
    "parallel_limit": {"min_value": 1, "max_value": MAX_INT},
    "token_budget": {"min_value": 0, "max_value": 2**62},
    "usd_budget": {"min_value": 0},
    "budget_warn_percent": {"min_value": 1, "max_value": 100},
}


class TeamSerializer(serializers.ModelSerializer):
    allowed_models = ModelNamesField()
    allowed_regions = ModelNamesField()
    metadata = JsonObjectField()

    class Meta:
        model = Team
        fields = ("id", "name", "allowed_models", "allowed_regions", "metadata", *LIMIT_FIELDS, "created_at")
        read_only_fields = ("created_at",)
        extra_kwargs = LIMIT_KWARGS

    def validate_allowed_models(self, value):
        return _validate_with(validate_model_names, value, "allowed_models")

    def validate_allowed_regions(self, value):
        from usage.operations import validate_regions

        return _validate_with(validate_regions, value, "allowed_regions")


class ApiKeySerializer(serializers.ModelSerializer):
    """A key as stored: its display prefix, never its secret nor its hash."""

    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), allow_null=True, required=False)
    owner = serializers.PrimaryKeyRelatedField(queryset=get_user_model().objects.all(), allow_null=True,
                                               required=False)
    allowed_models = ModelNamesField()
    allowed_regions = ModelNamesField()
    metadata = JsonObjectField()

    class Meta:
        model = ApiKey
        fields = ("id", "name", "prefix", "team", "owner", "allowed_models", "allowed_regions", "metadata",
                  *LIMIT_FIELDS, "source", "is_active", "expires_at", "created_at", "last_rotated_at",
                  "previous_valid_until")
        read_only_fields = ("prefix", "source", "created_at", "last_rotated_at", "previous_valid_until")
        extra_kwargs = LIMIT_KWARGS

    def validate_allowed_models(self, value):
        return _validate_with(validate_model_names, value, "allowed_models")

    def validate_allowed_regions(self, value):
        from usage.operations import validate_regions

        return _validate_with(validate_regions, value, "allowed_regions")

    def validate_expires_at(self, value):
        if value is not None and (self.instance is None or value != self.instance.expires_at):
            _validate_with(validate_future, value, "expires_at")
        return value


class ApiKeyCreateSerializer(ApiKeySerializer):
    class Meta(ApiKeySerializer.Meta):
        fields = ("name", "team", "owner", "allowed_models", "allowed_regions", "metadata", "expires_at", *LIMIT_FIELDS)


class ApiKeyUpdateSerializer(ApiKeySerializer):
    class Meta(ApiKeySerializer.Meta):
        fields = ("name", "team", "owner", "allowed_models", "allowed_regions", "metadata", "expires_at",
                  "is_active", *LIMIT_FIELDS)


class ApiKeyWithSecretSerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="The key's secret. Shown in this response only.")

    class Meta(ApiKeySerializer.Meta):
        fields = (*ApiKeySerializer.Meta.fields, "secret")


class RotateSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        min_value=0, max_value=90 * 86400, default=0,
        help_text="How long the current secret keeps working (0: it stops now; at most 90 days).",
    )


# --- the catalogue ---------------------------------------------------------------------------------


class _CleanedModelSerializer(serializers.ModelSerializer):
    """Runs the model's own `clean()` (field rules shared with the admin and imports)."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        probe = copy.copy(self.instance) if self.instance is not None else self.Meta.model()
        for name, value in attrs.items():
            setattr(probe, name, value)
        try:
            probe.clean()
        except DjangoValidationError as exc:
            raise _drf(exc) from None
        return attrs


class CredentialProfileSerializer(serializers.ModelSerializer):
    class Meta:
        model = CredentialProfile
        fields = ("id", "name", "auth_type", "config_file", "config_profile", "is_default")

    def validate(self, attrs):
        def current(name):
            return attrs.get(name, getattr(self.instance, name, "") if self.instance else "")

        errors = credential_errors(auth_type=current("auth_type") or "API_KEY", config_file=current("config_file"),
                                   config_profile=current("config_profile"))
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class DeploymentSerializer(_CleanedModelSerializer):
    region = serializers.CharField(max_length=40, required=False, allow_blank=True, validators=[validate_region])
    compartment_id = serializers.CharField(max_length=255, required=False, allow_blank=True,
                                           validators=[validate_compartment])
    default_max_tokens = serializers.IntegerField(min_value=1, max_value=MAX_INT, allow_null=True, required=False)
    max_output_tokens = serializers.IntegerField(min_value=1, max_value=MAX_INT, allow_null=True, required=False)
    param_defaults = JsonObjectField()

    class Meta:
        model = Deployment
        fields = "__all__"  # every field, including ones added later
        read_only_fields = ("created_at", "updated_at")
        extra_kwargs = {f: {"min_value": 0} for f in ("price_input_per_m", "price_cached_input_per_m",
                                                      "price_output_per_m", "price_reasoning_per_m")}

    def build_standard_field(self, field_name, model_field):
        """Bounded integers whatever the database (SQLite and PostgreSQL ranges differ)."""
        cls, kwargs = super().build_standard_field(field_name, model_field)
        if issubclass(cls, serializers.IntegerField):
            kwargs.setdefault("max_value", MAX_INT)
            kwargs.setdefault("min_value", 0)
            kwargs["max_value"] = min(kwargs["max_value"], MAX_INT)
        return cls, kwargs


class DeploymentQuerySerializer(serializers.Serializer):
    # A ChoiceField, not a BooleanField: DRF reads a missing boolean in a query string as false.
    enabled = serializers.ChoiceField(choices=["true", "false"], required=False)
    kind = serializers.ChoiceField(choices=Deployment._meta.get_field("kind").choices, required=False)
    region = serializers.CharField(max_length=40, required=False, validators=[validate_region])

    def validate(self, attrs):
        if "enabled" in attrs:
            attrs["enabled"] = attrs["enabled"] == "true"
        return attrs


class RouteInModelSerializer(serializers.ModelSerializer):
    deployment_name = serializers.CharField(source="deployment.name", read_only=True)

    class Meta:
        model = Route
        fields = ("id", "deployment", "deployment_name", "priority", "weight", "enabled")


class PublicModelSerializer(serializers.ModelSerializer):
    routes = RouteInModelSerializer(many=True, read_only=True)

    class Meta:
        model = PublicModel
        fields = "__all__"  # every field, including ones added later
        read_only_fields = ("created_at", "updated_at")

    def build_standard_field(self, field_name, model_field):
        cls, kwargs = super().build_standard_field(field_name, model_field)
        if issubclass(cls, serializers.IntegerField):
            kwargs["max_value"] = min(kwargs.get("max_value", MAX_SMALL), MAX_SMALL)
        return cls, kwargs

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() for c in value):
            raise serializers.ValidationError("Client model names cannot contain spaces: use '-', '.' or '/'.")
        return value

    def validate(self, attrs):
        fallback = attrs.get("fallback")
        if fallback is not None and self.instance is not None and fallback.pk == self.instance.pk:
            raise serializers.ValidationError({"fallback": "A model cannot be its own fallback: pick another one."})
        return attrs


class RouteSerializer(serializers.ModelSerializer):
    priority = serializers.IntegerField(min_value=0, max_value=MAX_SMALL, default=0)
    weight = serializers.IntegerField(min_value=0, max_value=MAX_SMALL, default=1)

    class Meta:
        model = Route
        fields = "__all__"


# --- usage -----------------------------------------------------------------------------------------


class UsageRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = UsageRecord
        fields = (
            "id", "request_id", "created_at", "key", "team", "endpoint", "public_model", "deployment", "region",
            "status", "error_type", "streamed", "prompt_tokens", "completion_tokens", "total_tokens",
            "cached_tokens", "reasoning_tokens", "usage_source", "cost_usd", "latency_ms", "ttft_ms",
            "upstream_request_id", "metadata",
        )
        read_only_fields = fields


class UsageQuerySerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False, help_text="From (inclusive), ISO 8601.")
    end = serializers.DateTimeField(required=False, help_text="To (exclusive), ISO 8601.")
    key = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    team = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    model = serializers.CharField(required=False, max_length=200)
    status = serializers.IntegerField(required=False, min_value=100, max_value=599)

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"end": "end must be later than start."})
        return attrs


class RollupQuerySerializer(UsageQuerySerializer):
    group_by = serializers.ChoiceField(choices=["key", "team", "model", "day"], default="day")


class RollupRowSerializer(serializers.Serializer):
    group = serializers.CharField(help_text="Key id, team id, public model name or day (YYYY-MM-DD).")
    label = serializers.CharField(help_text="Key or team name; the group itself otherwise.")
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField()


class RollupSerializer(serializers.Serializer):
    group_by = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    rows = RollupRowSerializer(many=True)


# --- discovery -------------------------------------------------------------------------------------


class DiscoveryRequestSerializer(serializers.Serializer):
    region = serializers.CharField(max_length=40, validators=[validate_region],
                                   help_text="e.g. us-chicago-1")
    compartment_id = serializers.CharField(max_length=255, validators=[validate_compartment])
    credential = serializers.SlugRelatedField(slug_field="name", queryset=CredentialProfile.objects.all(),
                                              required=False, allow_null=True,
                                              help_text="Credential profile name; default profile if omitted.")
    apply = serializers.BooleanField(default=False, help_text="Import what was found (upsert by public name).")
    names = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=1000,
                                  help_text="With apply: import only these public names.")


class DiscoveredModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    model_id = serializers.CharField()
    capability = serializers.CharField()
    api_format = serializers.CharField()
    vendor = serializers.CharField()
    version = serializers.CharField()
    ocid = serializers.CharField()
    endpoint_id = serializers.CharField()
    time_created = serializers.CharField()
    in_catalogue = serializers.BooleanField()


class ImportSummarySerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    disabled = serializers.IntegerField()


class DiscoveryResultSerializer(serializers.Serializer):
    region = serializers.CharField()
    compartment_id = serializers.CharField()
    source = serializers.ChoiceField(choices=["oci", "fallback"])
    warnings = serializers.ListField(child=serializers.CharField())
    models = DiscoveredModelSerializer(many=True)
    applied = ImportSummarySerializer(allow_null=True)
