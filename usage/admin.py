from django.contrib import admin, messages

from .keys import api_key_create
from .models import ApiKey, Team, UsageRecord


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "team", "source", "is_active", "expires_at", "created_at")
    list_filter = ("is_active", "source", "team")
    search_fields = ("name", "prefix")
    list_select_related = ("team",)
    readonly_fields = ("prefix", "lookup_hash", "previous_lookup_hash", "previous_valid_until", "source",
                       "created_at", "last_rotated_at")
    exclude = ("lookup_hash", "previous_lookup_hash")

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, secret = api_key_create(
            name=obj.name, team=obj.team, allowed_models=obj.allowed_models, expires_at=obj.expires_at,
            metadata=obj.metadata,
        )
        obj.pk, obj.prefix, obj.lookup_hash = key.pk, key.prefix, key.lookup_hash
        # Shown once: only the HMAC is stored.
        messages.warning(request, f"The new key's secret, shown only now: {secret}")


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ("created_at", "key", "public_model", "status", "total_tokens", "usage_source", "latency_ms")
    list_filter = ("status", "usage_source", "streamed", "endpoint")
    list_select_related = ("key",)
    show_full_result_count = False
    date_hierarchy = None
    search_fields = ("request_id",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
