from django.urls import path

from licenses import views

app_name = "licenses"

urlpatterns = [
    path("", views.license_list, name="list"),
    path("new/", views.license_create, name="create"),
    path("<int:pk>/", views.license_detail, name="detail"),
    path("<int:pk>/edit/", views.license_edit, name="edit"),
    path("<int:pk>/entitle/", views.license_entitle, name="entitle"),
    path(
        "<int:pk>/entitlements/<int:entitlement_pk>/revoke/",
        views.entitlement_revoke,
        name="revoke",
    ),
]
