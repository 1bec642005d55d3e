"""URLs of the full-stack side: admin, management API, dashboards. `/v1` lives in api/urls.py."""

from django.contrib import admin
from django.urls import include, path

from api.docs_views import docs_asset, docs_page
from api.ops_views import test_oci

admin.site.site_header = "OCI GenAI gateway"
admin.site.site_title = "OCI GenAI gateway"

# The admin index in the order an operator works: catalogue, keys and usage, audit log, then accounts.
_APP_ORDER = ("models_registry", "usage", "audit", "auth", "authtoken")
_alphabetical_app_list = admin.site.get_app_list


def _operator_app_list(request, app_label=None):
    apps = _alphabetical_app_list(request, app_label)
    return sorted(apps, key=lambda a: _APP_ORDER.index(a["app_label"]) if a["app_label"] in _APP_ORDER else 99)


admin.site.get_app_list = _operator_app_list

urlpatterns = [
    path("admin/", admin.site.urls),
    path("test-oci", test_oci, name="test-oci"),
    path("docs", docs_page, name="api-docs"),
    path("docs/assets/<str:name>", docs_asset, name="api-docs-asset"),
    path("manage/api/", include("usage.restapi.urls")),
    path("", include("usage.dashboards.urls")),  # /dashboards/ (staff) and /me/ (a key's own usage)
]
