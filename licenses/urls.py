from django.urls import path

from licenses import views

app_name = "licenses"

urlpatterns = [
    path("", views.license_list, name="list"),
]
