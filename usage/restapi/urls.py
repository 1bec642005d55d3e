"""/manage/api/: the management REST API, its OpenAPI schema and its docs (vendored assets, no CDN)."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.permissions import IsAdminUser
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("keys", views.ApiKeyViewSet, basename="key")
router.register("teams", views.TeamViewSet, basename="team")
router.register("credential-profiles", views.CredentialProfileViewSet, basename="credential-profile")
router.register("deployments", views.DeploymentViewSet, basename="deployment")
router.register("public-models", views.PublicModelViewSet, basename="public-model")
router.register("routes", views.RouteViewSet, basename="route")
router.register("usage", views.UsageRecordViewSet, basename="usage")

app_name = "manage"

urlpatterns = [
    path("", include(router.urls)),
    path("discovery/", views.DiscoveryView.as_view(), name="discovery"),
    path("auth/token/", views.StaffTokenView.as_view(), name="token"),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[IsAdminUser]), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="manage:schema", permission_classes=[IsAdminUser]),
         name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="manage:schema", permission_classes=[IsAdminUser]),
         name="redoc"),
    re_path(r"^.*$", views.not_found),
]
