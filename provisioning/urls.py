from django.urls import path

from provisioning import views

app_name = "provisioning"

urlpatterns = [
    path("", views.provisioning_page, name="page"),
    path("tokens/new/", views.token_create, name="token_create"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
]
