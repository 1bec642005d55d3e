"""URLs of the full-stack side: admin, management API, dashboards. `/v1` lives in api/urls.py."""

from django.contrib import admin
from django.urls import path

admin.site.site_header = "OCI GenAI gateway"
admin.site.site_title = "OCI GenAI gateway"

urlpatterns = [
    path("admin/", admin.site.urls),
]
