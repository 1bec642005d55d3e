import json

from django.contrib import admin
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from .export import audit_csv_response
from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor", "action", "object_type", "object_link", "changed_fields")
    list_filter = ("channel", "action", "object_type", ("created_at", admin.DateFieldListFilter))
    search_fields = ("actor", "object_repr", "=object_id", "note")
    date_hierarchy = None
    show_full_result_count = False
    actions = ("export_csv",)
    fields = ("created_at", "actor", "channel", "user", "action", "object_type", "object_id", "object_repr",
              "changes_table", "note")
    readonly_fields = fields
    change_list_template = "admin/audit/auditentry/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # an audit log an operator can edit is no audit log

    @admin.display(description="object", ordering="object_repr")
    def object_link(self, entry: AuditEntry):
        return format_html(
            '<a href="{}?object_type={}&object_id={}">{}</a>',
            reverse("admin:audit_auditentry_changelist"), entry.object_type, entry.object_id,
            entry.object_repr or entry.object_id,
        )

    @admin.display(description="fields")
    def changed_fields(self, entry: AuditEntry) -> str:
        names = sorted(entry.changes or {})
        return ", ".join(names[:8]) + (" …" if len(names) > 8 else "")

    @admin.display(description="changes")
    def changes_table(self, entry: AuditEntry):
        rows = sorted((entry.changes or {}).items())
        if not rows:
            return "—"

        def show(value):
            return "—" if value in (None, "") else json.dumps(value, ensure_ascii=False)

        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((name, show(v[0]) if isinstance(v, list) else "", show(v[1]) if isinstance(v, list) else show(v))
             for name, v in rows),
        )
        return format_html("<table><tr><th>field</th><th>before</th><th>after</th></tr>{}</table>", body)

    @admin.action(description="Export selected entries as CSV")
    def export_csv(self, request, queryset):
        return audit_csv_response(queryset.order_by("created_at", "id"))

    def get_urls(self):
        return [
            path("export.csv", self.admin_site.admin_view(self.export_view), name="audit_auditentry_export"),
            *super().get_urls(),
        ]

    def export_view(self, request):
        """The whole filtered changelist (same query string as the list page) as CSV."""
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        return audit_csv_response(changelist.get_queryset(request).order_by("created_at", "id"))
