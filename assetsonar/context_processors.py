"""Template context shared by every portal page."""

from __future__ import annotations

from django.http import HttpRequest


def portal(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "nav": [
            ("dashboard", "Dashboard", "dashboard"),
            ("members", "Members", "members:list"),
            ("assets", "Assets", "assets:list"),
            ("licenses", "Licenses", "licenses:list"),
            ("automations", "Workflows & Automations", "automations:list"),
        ]
        + (
            [("provisioning", "Provisioning", "provisioning:page")]
            if user.has_perm("provisioning.manage_provisioning")
            else []
        ),
        "nav_section": (request.resolver_match.namespace or request.resolver_match.url_name)
        if request.resolver_match
        else "",
    }
