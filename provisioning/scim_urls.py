"""/scim/v2/… (no trailing slashes: SCIM clients append paths to the base URL as they are)."""

from django.urls import path, re_path

from provisioning import api

urlpatterns = [
    path("ServiceProviderConfig", api.service_provider_config),
    path("ResourceTypes", api.resource_types),
    path("ResourceTypes/<str:name>", api.resource_type),
    path("Schemas", api.schemas),
    path("Schemas/<str:schema_id>", api.schema_detail),
    path("Users", api.users),
    path("Users/.search", api.search),
    path(".search", api.search),
    path("Users/<str:user_id>", api.user),
    # Anything else is a SCIM 404, not the portal's HTML page.
    re_path(r"^(?P<rest>.*)$", api.unknown),
]
