"""Template context shared by every portal page."""

from __future__ import annotations

from django.http import HttpRequest

from assetsonar.roles import visible_sections

# (section key, label, URL name, the section whose view permission the entry needs); the
# dashboard shows something to anyone who may see any section.
NAV = [
    ("dashboard", "Dashboard", "dashboard", None),
    ("members", "Members", "members:list", "members"),
    ("assets", "Assets", "assets:list", "assets"),
    ("returns", "Returns", "assets:returns", "assets"),
    ("licenses", "Licenses", "licenses:list", "licenses"),
    ("automations", "Workflows & Automations", "automations:list", "automations"),
    ("provisioning", "Provisioning", "provisioning:page", "provisioning"),
]


def portal(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # Only what the user's role may open: a link that ends in a 403 is no navigation.
    sections = visible_sections(user)
    return {
        "nav": [
            (key, label, urlname)
            for key, label, urlname, needs in NAV
            if (needs in sections if needs else bool(sections))
        ],
        "nav_section": _section(request.resolver_match) if request.resolver_match else "",
    }


def _section(match) -> str:
    # The Returns view lives in the assets app but has a navigation entry of its own.
    if match.view_name == "assets:returns":
        return "returns"
    return match.namespace or match.url_name
