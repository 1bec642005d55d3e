"""Dashboard URLs, mounted at the site root by gateway_project/urls.py (namespace "dashboards")."""

from django.urls import path

from . import views

app_name = "dashboards"

urlpatterns = [
    path("dashboards/", views.staff_dashboard, name="staff"),
    path("dashboards/keys/<int:key_id>/", views.staff_key_page, name="key"),
    path("dashboards/feed.json", views.staff_feed_poll, name="feed"),
    path("me/", views.me, name="me"),
    path("me/logout/", views.me_logout, name="me-logout"),
    path("me/feed.json", views.key_feed_poll, name="me-feed"),
]
