"""Template context shared by every portal page."""

from __future__ import annotations

from django.http import HttpRequest

from assetsonar.roles import visible_sections

# (section key, label, URL name, the section whose view permission the entry needs); the
# dashboard shows something to anyone who may see any section.
NAV = [
    ("dashboard", "Dashboard", "dashboard", None),
    ("members", "Members", "members:list", "members"),
    ("offboardings", "Upcoming offboardings", "members:upcoming", "members"),
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
        "nav_section": _section(request),
    }


def _section(request: HttpRequest) -> str:
    """The nav entry of this page: one whose URL name is this view's (Upcoming offboardings,
    inside members), else the app's namespace."""
    match = request.resolver_match
    if match is None:
        return ""
    for key, _label, urlname, _needs in NAV:
        if urlname == match.view_name:
            return key
    return match.namespace or match.url_name
