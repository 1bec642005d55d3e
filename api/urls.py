"""The OpenAI surface as Django views (API_SERVING=django), under API_ROUTE_PREFIX and without it."""

from django.conf import settings
from django.urls import path

from .routes import ROUTES
from .views import endpoint

_prefix = settings.API_ROUTE_PREFIX.strip("/")
_views = [(route.replace("{model}", "<path:model>"), endpoint(handler, methods)) for route, handler, methods in ROUTES]
urlpatterns = [path(f"{_prefix}/{route}" if _prefix else route, view) for route, view in _views]
if _prefix:
    urlpatterns += [path(route, view, name=f"unprefixed-{i}") for i, (route, view) in enumerate(_views)]
