from django.contrib import admin

from .models import CredentialProfile, Deployment, PublicModel, Route


@admin.register(CredentialProfile)
class CredentialProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "auth_type", "config_file", "config_profile", "is_default")


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "region", "model_id", "api_format", "enabled")
    list_filter = ("kind", "api_format", "region", "enabled")
    search_fields = ("name", "model_id", "endpoint_id", "description")
    list_select_related = ("credential",)
    actions = ("enable", "disable")
    fieldsets = (
        (None, {"fields": ("name", "kind", "enabled", "description")}),
        ("Where", {"fields": ("credential", "region", "compartment_id", "model_id", "endpoint_id",
                              "deployment_url", "endpoint_override", "api_format")}),
        ("Capabilities", {"fields": ("supports_chat", "supports_embeddings", "supports_rerank", "supports_tools",
                                     "supports_streaming_tools", "supports_vision", "supports_reasoning")}),
        ("Parameters", {"fields": ("default_max_tokens", "max_output_tokens", "max_tokens_field", "param_defaults",
                                   "unsupported_params", "force_non_stream", "drain_on_disconnect",
                                   "embed_truncate")}),
        ("Prices (USD per million tokens)", {"fields": ("price_input_per_m", "price_cached_input_per_m",
                                                        "price_output_per_m", "price_reasoning_per_m")}),
        ("Provenance", {"fields": ("source",)}),
    )

    @admin.action(description="Enable selected deployments")
    def enable(self, request, queryset):
        for obj in queryset:  # one save each, so signals bump the catalog version
            obj.enabled = True
            obj.save(update_fields=["enabled", "updated_at"])

    @admin.action(description="Disable selected deployments")
    def disable(self, request, queryset):
        for obj in queryset:
            obj.enabled = False
            obj.save(update_fields=["enabled", "updated_at"])


class RouteInline(admin.TabularInline):
    model = Route
    extra = 1
    autocomplete_fields = ("deployment",)


@admin.register(PublicModel)
class PublicModelAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "source")
    list_filter = ("enabled", "source")
    search_fields = ("name", "description")
    inlines = (RouteInline,)
