"""Template tags for pagers."""

from __future__ import annotations

from django import template
from django.template.defaulttags import querystring

register = template.Library()


@register.simple_tag(takes_context=True)
def page_querystring(context: template.Context, number: int, param: str = "page") -> str:
    """`{% querystring %}` whose page parameter's name is a variable, for pages with several
    pagers (the asset page pages its custody history and its licenses separately)."""
    return querystring(context, **{param: number})
