"""Root URLs."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from assetsonar import views

handler403 = "assetsonar.views.permission_denied"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("members/", include("members.urls")),
    path("assets/", include("assets.urls")),
    path("licenses/", include("licenses.urls")),
    path("automations/", include("automations.urls")),
    path("admin/", admin.site.urls),
]
