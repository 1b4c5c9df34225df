from django.urls import path

from assets import views, views_returns

app_name = "assets"

urlpatterns = [
    path("", views.asset_list, name="list"),
    path("new/", views.asset_create, name="create"),
    path("returns/", views_returns.return_list_view, name="returns"),
    path("<int:pk>/", views.asset_detail, name="detail"),
    path("<int:pk>/edit/", views.asset_edit, name="edit"),
    path("<int:pk>/check-out/", views.asset_check_out, name="check_out"),
    path("<int:pk>/check-in/", views.asset_check_in, name="check_in"),
    path("<int:pk>/mark-unlocked/", views.asset_mark_unlocked, name="mark_unlocked"),
]
