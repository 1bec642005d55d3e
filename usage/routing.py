"""Websocket routes (gateway_project/asgi.py sends every websocket here)."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from .consumers import KeyFeedConsumer, StaffFeedConsumer

websocket_urlpatterns = [
    path("ws/dashboards/usage/", StaffFeedConsumer.as_asgi()),
    path("ws/me/usage/", KeyFeedConsumer.as_asgi()),
]

# Origin checked against ALLOWED_HOSTS (no cross-site socket rides on a staff session); the session
# and user come from the same cookies as the pages.
websocket_application = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
