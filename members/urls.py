from django.urls import path

from members import views

app_name = "members"

urlpatterns = [
    path("", views.member_list, name="list"),
    path("new/", views.member_create, name="create"),
    path("upcoming-offboardings/", views.upcoming_offboardings, name="upcoming"),
    path(
        "upcoming-offboardings/export.csv",
        views.upcoming_offboardings_export,
        name="upcoming_export",
    ),
    path("bulk-deactivate/", views.member_bulk_deactivate, name="bulk_deactivate"),
    path("<int:pk>/", views.member_detail, name="detail"),
    path("<int:pk>/edit/", views.member_edit, name="edit"),
    path("<int:pk>/deactivate/", views.member_deactivate, name="deactivate"),
    path("<int:pk>/reactivate/", views.member_reactivate, name="reactivate"),
    path("<int:pk>/delete/", views.member_delete, name="delete"),
]
