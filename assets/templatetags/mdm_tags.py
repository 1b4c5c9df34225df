"""Template tags for the asset MDM card, so the asset detail view needs no MDM context."""

from __future__ import annotations

from django import template

from assets.selectors_mdm import MDMHistory, mdm_commands_for

register = template.Library()


@register.simple_tag
def mdm_history(asset) -> MDMHistory:
    """`{% mdm_history asset as mdm %}`: the asset's MDM commands (one query)."""
    return mdm_commands_for(asset)
