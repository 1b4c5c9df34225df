"""A row's URL without a `reverse()` per row (see assetsonar.links), for loops over many rows:
`{{ pk|pk_url:"members:detail" }}`, or with several integer arguments
`{% pk_url "licenses:revoke" license.pk ent.pk as revoke_url %}`. Loaded for every template
(TEMPLATES builtins)."""

from __future__ import annotations

from django import template

from assetsonar.links import pk_url as _pk_url

register = template.Library()


@register.filter(name="pk_url")
def pk_url_filter(pk, name: str) -> str:
    return _pk_url(name, pk)


@register.simple_tag(name="pk_url")
def pk_url_tag(name: str, *pks) -> str:
    return _pk_url(name, *pks)
