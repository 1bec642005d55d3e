"""The catalogue in the admin: credential profiles, deployments, public models with their routes, discovery."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from audit.adminmixins import AuditActorMixin
from audit.services import audited_update

from . import bus
from .discovery import discover_models, discovery_apply
from .models import CredentialProfile, Deployment, PublicModel, Route
from .services import ImportError_
from .validation import credential_errors, validate_compartment, validate_region


def _bulk_set(modeladmin, request, queryset, verb: str, **values) -> None:
    """One UPDATE, one audit entry per changed row, one cache bump (`update()` sends no signals)."""
    changed = audited_update(queryset, **values)
    if changed:
        bus.bump("catalog")
    noun = modeladmin.model._meta.verbose_name if changed == 1 else modeladmin.model._meta.verbose_name_plural
    modeladmin.message_user(request, f"{verb} {changed} {noun}.", messages.SUCCESS)


class EnableDisableMixin:
    actions = ("enable", "disable")

    @admin.action(description="Enable selected %(verbose_name_plural)s", permissions=["change"])
    def enable(self, request, queryset):
        _bulk_set(self, request, queryset.filter(enabled=False), "Enabled", enabled=True)

    @admin.action(description="Disable selected %(verbose_name_plural)s", permissions=["change"])
    def disable(self, request, queryset):
        _bulk_set(self, request, queryset.filter(enabled=True), "Disabled", enabled=False)


# --- credential profiles ---------------------------------------------------------------------------


class CredentialProfileForm(forms.ModelForm):
    class Meta:
        model = CredentialProfile
        fields = "__all__"

    def clean(self):
        data = super().clean()
        errors = credential_errors(auth_type=data.get("auth_type") or "", config_file=data.get("config_file") or "",
                                   config_profile=data.get("config_profile") or "")
        for field, message in errors.items():
            self.add_error(field, message)
        return data


@admin.register(CredentialProfile)
class CredentialProfileAdmin(AuditActorMixin, admin.ModelAdmin):
    form = CredentialProfileForm
    list_display = ("name", "auth_type", "config_file", "config_profile", "is_default", "deployment_count")
    list_filter = ("auth_type", "is_default")
    search_fields = ("name", "config_file", "config_profile")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_deployments=Count("deployment"))

    @admin.display(description="deployments", ordering="_deployments")
    def deployment_count(self, obj) -> int:
        return obj._deployments

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.is_default:
            # One default at a time: untick the others, one save each (signals bump and audit).
            for other in CredentialProfile.objects.filter(is_default=True).exclude(pk=obj.pk):
                other.is_default = False
                other.save(update_fields=["is_default"])
                self.message_user(request, f"{other.name} is no longer the default profile.", messages.INFO)


# --- deployments -----------------------------------------------------------------------------------


class DeploymentForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False),
        label="API key",
        help_text="OpenAI-compatible providers: stored encrypted with GATEWAY_ENCRYPTION_KEY and never shown "
        "again. Leave blank to keep the stored key.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored API key")

    class Meta:
        model = Deployment
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = bool(self.instance and self.instance.api_key_encrypted)
        self.fields["api_key"].help_text += " A key is stored." if stored else " No key is stored."

    def clean_api_key(self):
        from .provider_keys import KeyUnavailable, encrypt

        value = self.cleaned_data.get("api_key") or ""
        if not value:
            return ""
        try:
            return encrypt(value)  # only the ciphertext leaves this method
        except KeyUnavailable as exc:
            raise forms.ValidationError(str(exc)) from None

    def save(self, commit=True):
        if self.cleaned_data.get("clear_api_key"):
            self.instance.api_key_encrypted = ""
        elif self.cleaned_data.get("api_key"):
            self.instance.api_key_encrypted = self.cleaned_data["api_key"]
        return super().save(commit=commit)

    def clean_region(self):
        value = (self.cleaned_data.get("region") or "").strip()
        validate_region(value)
        return value

    def clean_compartment_id(self):
        value = (self.cleaned_data.get("compartment_id") or "").strip()
        validate_compartment(value)
        return value


class RouteOfDeploymentInline(admin.TabularInline):
    model = Route
    extra = 0
    fields = ("public_model", "priority", "weight", "enabled")
    autocomplete_fields = ("public_model",)
    verbose_name_plural = "Public models served by this deployment"


@admin.register(Deployment)
class DeploymentAdmin(AuditActorMixin, EnableDisableMixin, admin.ModelAdmin):
    form = DeploymentForm
    list_display = ("name", "kind", "region", "target", "api_format", "credential", "enabled")
    list_filter = ("enabled", "kind", "api_format", "region", "credential", "supports_chat", "supports_embeddings",
                   "source")
    search_fields = ("name", "model_id", "endpoint_id", "deployment_url", "description")
    list_select_related = ("credential",)
    inlines = (RouteOfDeploymentInline,)
    fieldsets = (
        (None, {"fields": ("name", "kind", "enabled", "description")}),
        ("Where", {"fields": ("credential", "region", "compartment_id", "model_id", "endpoint_id",
                              "deployment_url", "endpoint_override", "api_format")}),
        ("OpenAI-compatible provider", {"fields": ("base_url", "azure_api_version", "api_key_env", "api_key",
                                                   "clear_api_key")}),
        ("Capabilities", {"fields": ("supports_chat", "supports_embeddings", "supports_rerank", "supports_tools",
                                     "supports_streaming_tools", "supports_vision", "supports_reasoning")}),
        ("Parameters", {"fields": ("default_max_tokens", "max_output_tokens", "max_tokens_field", "param_defaults",
                                   "unsupported_params", "force_non_stream", "drain_on_disconnect",
                                   "embed_truncate")}),
        ("Prices (USD per million tokens)", {"fields": ("price_input_per_m", "price_cached_input_per_m",
                                                        "price_output_per_m", "price_reasoning_per_m")}),
        ("Provenance", {"fields": ("source",)}),
    )

    TIMEOUT_FIELDS = ("connect_timeout_s", "first_byte_timeout_s", "idle_timeout_s", "total_timeout_s",
                      "queue_timeout_s", "max_in_flight")

    def get_fieldsets(self, request, obj=None):
        """The declared groups, then any field they do not name (so a new model field is never hidden)."""
        fieldsets = list(super().get_fieldsets(request, obj))
        listed = set(flatten_fieldsets(fieldsets))
        editable = [f.name for f in Deployment._meta.get_fields()
                    if getattr(f, "editable", False) and f.concrete and not f.primary_key and not f.auto_created
                    and f.name not in ("created_at", "updated_at")]
        timeouts = [n for n in self.TIMEOUT_FIELDS if n in editable and n not in listed]
        rest = [n for n in editable if n not in listed and n not in timeouts]
        if timeouts:
            fieldsets.insert(-1, ("Timeouts and concurrency", {"fields": timeouts}))
        if rest:
            fieldsets.insert(-1, ("More settings", {"fields": rest}))
        return fieldsets

    @admin.display(description="model / endpoint")
    def target(self, obj: Deployment) -> str:
        return obj.endpoint_id or obj.deployment_url or (f"{obj.base_url} {obj.model_id}" if obj.base_url
                                                         else obj.model_id)


# --- public models and routes ----------------------------------------------------------------------


class RouteInline(admin.TabularInline):
    model = Route
    extra = 1
    fields = ("deployment", "priority", "weight", "enabled")
    autocomplete_fields = ("deployment",)


class PublicModelForm(forms.ModelForm):
    class Meta:
        model = PublicModel
        fields = "__all__"

    def clean(self):
        data = super().clean()
        fallback = data.get("fallback")
        if fallback is not None and self.instance.pk and fallback.pk == self.instance.pk:
            self.add_error("fallback", "A model cannot be its own fallback: pick another one, or none.")
        return data

    def clean_name(self):
        name = (self.cleaned_data.get("name") or "").strip()
        if not name or any(c.isspace() for c in name):
            raise ValidationError("Client model names cannot contain spaces: use '-', '.' or '/', e.g. team/llama-3.3.")
        return name


@admin.register(PublicModel)
class PublicModelAdmin(AuditActorMixin, EnableDisableMixin, admin.ModelAdmin):
    form = PublicModelForm
    list_display = ("name", "enabled", "routes_summary", "source", "updated_at")
    list_filter = ("enabled", "source", "routes__deployment__kind", "routes__deployment__region")
    search_fields = ("name", "description", "routes__deployment__name", "routes__deployment__model_id")
    inlines = (RouteInline,)
    change_list_template = "admin/models_registry/publicmodel/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("routes__deployment")

    @admin.display(description="routes (in order)")
    def routes_summary(self, obj: PublicModel):
        routes = sorted(obj.routes.all(), key=lambda r: (r.priority, r.id))
        if not routes:
            return format_html('<span style="color: var(--error-fg)">{}</span>', "no route: clients get 404")
        return ", ".join(f"{r.deployment.name}{'' if r.enabled and r.deployment.enabled else ' (off)'}"
                         for r in routes)

    def get_urls(self):
        return [
            path("discover/", self.audited_view(self.discover_view), name="models_registry_publicmodel_discover"),
            *super().get_urls(),
        ]

    def discover_view(self, request):
        """Run discovery for a region and compartment (GET), import the checked models (POST)."""
        if not self.has_add_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        if request.method == "POST":
            form = DiscoverForm(request.POST)
            if form.is_valid():
                names = request.POST.getlist("names")
                if not names:
                    self.message_user(request, "Nothing imported: tick at least one model.", messages.WARNING)
                    query = urlencode({"run": 1, **{k: request.POST.get(k, "") for k in form.fields}})
                    return HttpResponseRedirect(f"{request.path}?{query}")
                result = discover_models(**form.discovery_kwargs())
                for warning in result.warnings:
                    self.message_user(request, warning, messages.WARNING)
                try:
                    summary = discovery_apply(result, names=names)
                except ImportError_ as exc:
                    self.message_user(request, f"Nothing imported: {exc}", messages.ERROR)
                else:
                    self.message_user(request, f"Imported from {result.region}: {summary}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:models_registry_publicmodel_changelist"))
        else:
            initial = {"region": settings.OCI_REGION, "compartment_id": settings.OCI_COMPARTMENT}
            form = DiscoverForm(request.GET if "run" in request.GET else None, initial=initial)
        result, rows = None, []
        if form.is_bound and form.is_valid():
            result = discover_models(**form.discovery_kwargs())
            existing = {pm.name: pm for pm in PublicModel.objects.filter(name__in=result.names())}
            rows = [{"model": m, "existing": existing.get(m.name)} for m in result.models]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Discover models from OCI",
            "form": form,
            "result": result,
            "rows": rows,
            "credential_id": form.data.get("credential", "") if form.is_bound else "",
        }
        return TemplateResponse(request, "admin/models_registry/publicmodel/discover.html", context)


class DiscoverForm(forms.Form):
    region = forms.CharField(max_length=40, help_text="e.g. us-chicago-1", validators=[validate_region])
    compartment_id = forms.CharField(max_length=255, label="Compartment OCID", validators=[validate_compartment],
                                     widget=forms.TextInput(attrs={"size": 90}))
    credential = forms.ModelChoiceField(
        CredentialProfile.objects.all(), required=False, empty_label="default profile / environment"
    )

    def discovery_kwargs(self) -> dict:
        return {"region": self.cleaned_data["region"].strip(),
                "compartment_id": self.cleaned_data["compartment_id"].strip(),
                "credential": self.cleaned_data.get("credential")}


@admin.register(Route)
class RouteAdmin(AuditActorMixin, EnableDisableMixin, admin.ModelAdmin):
    list_display = ("public_model", "deployment", "priority", "weight", "enabled")
    list_editable = ("priority", "weight", "enabled")
    list_filter = ("enabled", "deployment__kind", "deployment__region")
    search_fields = ("public_model__name", "deployment__name")
    list_select_related = ("public_model", "deployment")
    autocomplete_fields = ("public_model", "deployment")
