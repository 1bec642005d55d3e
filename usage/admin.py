"""Keys, teams and usage records in the admin.

A key's secret is shown once, on the page that answers its creation or rotation, and nowhere else:
not in a message (messages travel in a cookie), not in the database (only an HMAC is stored).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from audit.adminmixins import AuditActorMixin

from .keys import api_key_create, api_key_disable, api_key_rotate
from .models import LIMIT_FIELDS, ApiKey, Team, UsageRecord
from .operations import (
    api_key_enable,
    api_key_extend,
    api_key_update,
    validate_future,
    validate_metadata,
    validate_model_names,
)

SECRET_ATTR = "_gateway_new_secret"


def _field_errors(exc: ValidationError, field: str) -> ValidationError:
    """A service's {field: message} error as the plain error of one form field."""
    return ValidationError(exc.message_dict.get(field, exc.messages)) if hasattr(exc, "error_dict") else exc


class ModelNamesField(forms.CharField):
    """Public model names, typed comma-separated (or as a JSON list); blank means every model."""

    widget = forms.Textarea(attrs={"rows": 2, "cols": 70})

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(value)
        return value

    def to_python(self, value):
        if value is None:
            return []
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, list):
            return text
        if text.startswith("["):
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                raise ValidationError('Not a valid JSON list: write names separated by commas, e.g. '
                                      'llama-3.3, embed-v4, or leave it blank for every model.') from None
            return data
        return [n.strip() for n in re.split(r"[,\n]", text) if n.strip()]

    def has_changed(self, initial, data):
        try:
            return list(initial or []) != self.to_python(data)
        except ValidationError:
            return True


class MetadataField(forms.JSONField):
    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", 'Labels copied to usage records, e.g. {"cost_centre": "4711"}.')
        super().__init__(**kwargs)


class _NamesAndMetadataForm(forms.ModelForm):
    """Allowlist, metadata and limits; a form posted without the limit fields keeps the stored ones."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("token_budget_period", "usd_budget_period"):
            if name in self.fields:
                self.fields[name].required = False

    def _period(self, name: str):
        value = self.cleaned_data.get(name)
        return value or getattr(self.instance, name, None) or self._meta.model._meta.get_field(name).default

    def clean_token_budget_period(self):
        return self._period("token_budget_period")

    def clean_usd_budget_period(self):
        return self._period("usd_budget_period")

    allowed_models = ModelNamesField(
        required=False, label="Allowed models",
        help_text="Public model names separated by commas; blank means every model.",
    )
    allowed_regions = ModelNamesField(
        required=False, label="Allowed regions",
        help_text="Data residency: OCI regions (e.g. eu-frankfurt-1) separated by commas; blank means any region.",
    )
    metadata = MetadataField()

    def clean_allowed_regions(self):
        from .operations import validate_regions

        try:
            return validate_regions(self.cleaned_data.get("allowed_regions"))
        except ValidationError as exc:
            raise _field_errors(exc, "allowed_regions") from None

    def clean_allowed_models(self):
        try:
            return validate_model_names(self.cleaned_data.get("allowed_models"))
        except ValidationError as exc:
            raise _field_errors(exc, "allowed_models") from None

    def clean_metadata(self):
        try:
            return validate_metadata(self.cleaned_data.get("metadata"))
        except ValidationError as exc:
            raise _field_errors(exc, "metadata") from None


class ApiKeyAddForm(_NamesAndMetadataForm):
    class Meta:
        model = ApiKey
        fields = ("name", "team", "owner", "allowed_models", "allowed_regions", "expires_at", "metadata",
                  *LIMIT_FIELDS)

    def clean_expires_at(self):
        try:
            return validate_future(self.cleaned_data.get("expires_at"))
        except ValidationError as exc:
            raise _field_errors(exc, "expires_at") from None


class ApiKeyChangeForm(_NamesAndMetadataForm):
    class Meta:
        model = ApiKey
        fields = ("name", "team", "owner", "is_active", "allowed_models", "allowed_regions", "expires_at", "metadata",
                  *LIMIT_FIELDS)

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if "expires_at" in self.changed_data and value is not None:
            try:
                validate_future(value)
            except ValidationError as exc:
                raise _field_errors(exc, "expires_at") from None
        return value


class RotateForm(forms.Form):
    grace = forms.TypedChoiceField(
        label="Old secret keeps working for",
        coerce=int,
        initial=0,
        choices=[(0, "no time: stop it now"), (3600, "1 hour"), (86400, "24 hours"), (7 * 86400, "7 days"),
                 (30 * 86400, "30 days")],
        help_text="A grace period lets clients switch to the new secret without an outage.",
    )


class ExtendForm(forms.Form):
    days = forms.IntegerField(
        min_value=1, max_value=3650, initial=90, label="Extend by (days)",
        help_text="Counted from the current expiry, or from now for keys already expired.",
    )


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [("expired", "expired"), ("7d", "expires within 7 days"), ("30d", "expires within 30 days"),
                ("never", "never expires")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        if self.value() in ("7d", "30d"):
            days = 7 if self.value() == "7d" else 30
            return queryset.filter(expires_at__gt=now, expires_at__lte=now + timedelta(days=days))
        if self.value() == "never":
            return queryset.filter(expires_at__isnull=True)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(AuditActorMixin, admin.ModelAdmin):
    list_display = ("name", "prefix", "team", "owner", "status", "expires_at", "last_rotated_at", "created_at")
    list_filter = ("is_active", ExpiryFilter, "source", "team")
    search_fields = ("name", "prefix", "team__name", "owner__username")
    list_select_related = ("team", "owner")
    readonly_fields = ("prefix", "source", "created_at", "last_rotated_at", "previous_valid_until")
    actions = ("revoke", "enable", "extend_expiry", "rotate")
    change_form_template = "admin/usage/apikey/change_form.html"

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ApiKeyChangeForm if obj is not None else ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        limits = ("Limits and budgets", {"fields": LIMIT_FIELDS, "classes": ("collapse",),
                                         "description": "Blank means no limit of that kind. The team's limits "
                                                        "apply as well."})
        if obj is None:
            return ((None, {"fields": ("name", "team", "owner", "allowed_models", "allowed_regions", "expires_at",
                                       "metadata"),
                            "description": "The secret is generated when you save and shown once, on the next "
                                           "page."}), limits)
        return (
            (None, {"fields": ("name", "prefix", "is_active", "team", "owner")}),
            ("Access", {"fields": ("allowed_models", "allowed_regions", "expires_at", "metadata")}),
            limits,
            ("History", {"fields": ("source", "created_at", "last_rotated_at", "previous_valid_until")}),
        )

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    @admin.display(description="status")
    def status(self, key: ApiKey):
        now = timezone.now()
        if not key.is_active:
            return format_html('<span style="color: var(--error-fg)">{}</span>', "revoked")
        if key.expires_at and key.expires_at <= now:
            return format_html('<span style="color: var(--error-fg)">{}</span>', "expired")
        if key.expires_at and key.expires_at <= now + timedelta(days=7):
            return "expires soon"
        return "active"

    # --- creation: the secret is rendered in the response, once -----------------------------------

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        data = form.cleaned_data
        key, secret = api_key_create(
            name=data["name"], team=data.get("team"), allowed_models=data.get("allowed_models") or [],
            expires_at=data.get("expires_at"), metadata=data.get("metadata") or {},
        )
        # api_key_create knows no owner nor limits: set them in one more (audited) save if given.
        api_key_update(key=key, owner=data.get("owner"), allowed_regions=data.get("allowed_regions") or [],
                       **{f: data[f] for f in LIMIT_FIELDS if f in data})
        obj.__dict__.update({k: v for k, v in key.__dict__.items() if k != "_state"})
        obj._state.adding = False
        setattr(request, SECRET_ATTR, secret)

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, SECRET_ATTR, None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return self._secret_page(request, obj, secret, headline=f"Key {obj.name} was created.")

    def _secret_page(self, request, key, secret, *, headline, rotated=False):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Copy the secret now",
            "key": key,
            "secret": secret,
            "headline": headline,
            "rotated": rotated,
            "previous_valid_until": key.previous_valid_until if rotated else None,
        }
        response = TemplateResponse(request, "admin/usage/apikey/secret.html", context)
        response["Cache-Control"] = "no-store"  # never from the browser's cache or a proxy
        return response

    # --- rotation --------------------------------------------------------------------------------

    def get_urls(self):
        return [
            path("<path:object_id>/rotate/", self.audited_view(self.rotate_view), name="usage_apikey_rotate"),
            *super().get_urls(),
        ]

    def rotate_view(self, request, object_id):
        key = self.get_object(request, unquote(object_id))
        if key is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, key):
            raise PermissionDenied
        form = RotateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            grace = timedelta(seconds=form.cleaned_data["grace"])
            secret = api_key_rotate(key=key, grace=grace)
            key.refresh_from_db()
            self.log_change(request, key, f"Rotated the secret (grace {grace}).")
            return self._secret_page(request, key, secret, headline=f"Key {key.name} has a new secret.",
                                     rotated=True)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": f"Rotate {key.name}",
                   "key": key, "form": form}
        return TemplateResponse(request, "admin/usage/apikey/rotate.html", context)

    # --- actions ---------------------------------------------------------------------------------

    @admin.action(description="Revoke selected keys (stop them working now)", permissions=["change"])
    def revoke(self, request, queryset):
        keys = list(queryset.filter(is_active=True))
        for key in keys:  # one save each: the keys cache is bumped and each change audited
            api_key_disable(key=key)
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)

    @admin.action(description="Re-enable selected keys", permissions=["change"])
    def enable(self, request, queryset):
        keys = list(queryset.filter(is_active=False))
        for key in keys:
            api_key_enable(key=key)
        self.message_user(request, f"Enabled {len(keys)} key(s).", messages.SUCCESS)

    @admin.action(description="Extend expiry of selected keys…", permissions=["change"])
    def extend_expiry(self, request, queryset):
        form = ExtendForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            now = timezone.now()
            days = timedelta(days=form.cleaned_data["days"])
            extended, skipped = 0, []
            for key in queryset:
                if key.expires_at is None:
                    skipped.append(key.name)
                    continue
                api_key_extend(key=key, until=max(key.expires_at, now) + days)
                extended += 1
            self.message_user(request, f"Extended {extended} key(s) by {days.days} days.", messages.SUCCESS)
            if skipped:
                self.message_user(request, f"Not extended, they never expire: {', '.join(skipped)}.", messages.INFO)
            return None
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Extend key expiry",
                   "queryset": queryset, "form": form}
        return TemplateResponse(request, "admin/usage/apikey/extend.html", context)

    @admin.action(description="Rotate the selected key…", permissions=["change"])
    def rotate(self, request, queryset):
        keys = list(queryset[:2])
        if len(keys) != 1:
            self.message_user(request, "Rotate one key at a time: its new secret is shown once.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:usage_apikey_rotate", args=[keys[0].pk]))


# --- teams -----------------------------------------------------------------------------------------


class TeamForm(_NamesAndMetadataForm):
    class Meta:
        model = Team
        fields = ("name", "allowed_models", "allowed_regions", "metadata", *LIMIT_FIELDS)


class TeamKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("name", "prefix", "is_active", "expires_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "Keys of this team (create keys from the key list)"

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Team)
class TeamAdmin(AuditActorMixin, admin.ModelAdmin):
    form = TeamForm
    list_display = ("name", "active_keys", "all_keys", "models", "created_at")
    search_fields = ("name",)
    inlines = (TeamKeyInline,)
    fieldsets = (
        (None, {"fields": ("name", "allowed_models", "allowed_regions", "metadata")}),
        ("Limits and budgets", {"fields": LIMIT_FIELDS, "description": "Shared by all the team's keys; blank "
                                                                       "means no limit of that kind."}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            _keys=Count("keys"), _active=Count("keys", filter=Q(keys__is_active=True))
        )

    @admin.display(description="active keys", ordering="_active")
    def active_keys(self, team) -> int:
        return team._active

    @admin.display(description="keys", ordering="_keys")
    def all_keys(self, team) -> int:
        return team._keys

    @admin.display(description="allowed models")
    def models(self, team) -> str:
        return ", ".join(team.allowed_models) if team.allowed_models else "all"


# --- usage records: read-only, fast at tens of millions of rows -------------------------------------


class NoCountPaginator(Paginator):
    """Never runs COUNT(*): it reads the requested page plus one row to learn whether another follows.

    `count` is then "rows up to the end of this page, plus one if there is more", which is all the
    changelist needs to show previous/next links.
    """

    def __init__(self, object_list, per_page, page_number: int = 1, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.page_number = max(page_number, 1)

    @cached_property
    def count(self) -> int:
        start = (self.page_number - 1) * self.per_page
        ids = self.object_list.values_list("pk", flat=True)[start: start + self.per_page + 1]
        return start + len(list(ids))


class UsageChangeList(ChangeList):
    @property
    def next_page_url(self) -> str:
        if self.result_count > self.page_num * self.list_per_page:
            return self.get_query_string({PAGE_VAR: self.page_num + 1})
        return ""

    @property
    def prev_page_url(self) -> str:
        return self.get_query_string({PAGE_VAR: self.page_num - 1}) if self.page_num > 1 else ""


class CreatedWithinFilter(admin.SimpleListFilter):
    title = "time"
    parameter_name = "within"
    WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
               "30d": timedelta(days=30)}

    def lookups(self, request, model_admin):
        return [("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days"), ("30d", "last 30 days")]

    def queryset(self, request, queryset):
        window = self.WINDOWS.get(self.value() or "")
        return queryset.filter(created_at__gte=timezone.now() - window) if window else queryset


class StatusClassFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status_class"

    def lookups(self, request, model_admin):
        return [("2xx", "success (2xx)"), ("4xx", "client error (4xx)"), ("429", "rate limited (429)"),
                ("5xx", "server / upstream error (5xx)")]

    def queryset(self, request, queryset):
        ranges = {"2xx": (200, 299), "4xx": (400, 499), "429": (429, 429), "5xx": (500, 599)}
        if self.value() in ranges:
            low, high = ranges[self.value()]
            return queryset.filter(status__gte=low, status__lte=high)
        return queryset


class EndpointFilter(admin.SimpleListFilter):
    """Fixed choices: listing the distinct values would scan the whole table."""

    title = "endpoint"
    parameter_name = "endpoint"

    def lookups(self, request, model_admin):
        return [(e, e) for e in ("chat.completions", "completions", "embeddings", "rerank", "responses")]

    def queryset(self, request, queryset):
        return queryset.filter(endpoint=self.value()) if self.value() else queryset


class PublicModelFilter(admin.SimpleListFilter):
    """Choices from the (small) catalogue, not from SELECT DISTINCT over usage."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        from models_registry.models import PublicModel

        return [(n, n) for n in PublicModel.objects.order_by("name").values_list("name", flat=True)[:200]]

    def queryset(self, request, queryset):
        return queryset.filter(public_model=self.value()) if self.value() else queryset


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ("created_at", "key", "team", "endpoint", "public_model", "status", "total_tokens", "cost_usd",
                    "latency_ms", "usage_source")
    list_filter = (CreatedWithinFilter, StatusClassFilter, EndpointFilter, PublicModelFilter, "usage_source",
                   "streamed", "team")
    list_select_related = ("key", "team")
    search_fields = ("request_id",)
    search_help_text = "An exact request id (the x-request-id response header)."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are COUNT(*) per filter choice
    list_max_show_all = 0  # "Show all" would load the whole table
    sortable_by = ("created_at",)
    ordering = ("-created_at",)
    paginator = NoCountPaginator
    list_per_page = 100
    actions = None

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        try:
            page = int(request.GET.get(PAGE_VAR, 1))
        except ValueError:
            page = 1
        return NoCountPaginator(queryset, per_page, page_number=page, orphans=orphans,
                                allow_empty_first_page=allow_empty_first_page)

    def get_changelist(self, request, **kwargs):
        return UsageChangeList

    def get_search_results(self, request, queryset, search_term):
        """Exact, indexed matches only: a LIKE over millions of rows would scan them all."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(request_id=term), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # retention is a setting, applied by a command
