"""The OpenAI surface, under API_ROUTE_PREFIX (default /v1) and also without the prefix."""

from django.conf import settings
from django.urls import path

from . import views

_routes = [
    ("models", views.list_models),
    ("models/<path:model_id>", views.retrieve_model),
    ("chat/completions", views.chat_completions),
    ("usage", views.key_usage),
    ("openapi.json", views.openapi),
]

_prefix = settings.API_ROUTE_PREFIX.strip("/")
urlpatterns = [path(f"{_prefix}/{route}" if _prefix else route, view) for route, view in _routes]
if _prefix:
    urlpatterns += [path(route, view, name=f"unprefixed-{i}") for i, (route, view) in enumerate(_routes)]
