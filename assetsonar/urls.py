"""Root URLs."""

from types import MethodType

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from assetsonar import views
from automations import otp

# The admin sign-in asks staff who set up an authenticator for its code, and such staff reach the
# admin only through that sign-in (the portal's own sign-in does not ask for a code). The default
# site object stays, so every app's registrations keep working.
admin.site.login_form = otp.OTPAdminAuthenticationForm
admin.site.login_template = "automations/admin_login.html"
admin.site.has_permission = MethodType(otp.admin_has_permission, admin.site)

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
    path("provisioning/", include("provisioning.urls")),
    path("scim/v2/", include("provisioning.scim_urls")),
    path("admin/", admin.site.urls),
]
