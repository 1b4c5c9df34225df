"""Detail-page URLs for many rows at the cost of one `reverse()`.

A list page links every row to its detail page (50 members, 60 entitlements with their member
and device): `reverse()` per link walks the resolver's candidates and quotes the arguments, about
a tenth of a millisecond each, several milliseconds a page (bench/pages.py, license detail: 126
reverses a request). `pk_url(name, pk)` reverses `name` once with a sentinel primary key and
then only substitutes the key, which is exact for a pattern whose one argument is an integer
(`<int:pk>`). The result equals `reverse(name, args=[pk])` (tested for every model's
`get_absolute_url`).

Templates: `{{ ent.member_id|pk_url:"members:detail" }}` (loaded for every template, TEMPLATES
builtins) in loops instead of `{% url 'members:detail' ent.member_id %}`.
"""

from __future__ import annotations

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import get_script_prefix, get_urlconf, reverse

# Larger than any primary key a page shows, and strings that occur nowhere else in a URL.
_SENTINEL = 9_187_201_950_435_737_400
_SPLIT: dict[tuple[str, int, str, object], list[str] | None] = {}


def pk_url(name: str, *pks: int | str) -> str:
    """`reverse(name, args=pks)` for a URL pattern whose arguments are integers."""
    key = (name, len(pks), get_script_prefix(), get_urlconf())
    parts = _SPLIT.get(key, ())
    if parts == ():
        parts = _SPLIT[key] = _split(reverse(name, args=[_SENTINEL + i for i in range(len(pks))]))
    if parts is None:  # a pattern that does not echo its arguments in order
        return reverse(name, args=pks)
    out = [parts[0]]
    for pk, part in zip(pks, parts[1:], strict=True):
        out += (str(int(pk)), part)
    return "".join(out)


def _split(url: str) -> list[str] | None:
    """The URL's text around the sentinels, in order; None if they are not all there."""
    parts, rest, i = [], url, 0
    while str(_SENTINEL + i) in rest:
        head, _, rest = rest.partition(str(_SENTINEL + i))
        parts.append(head)
        i += 1
    return [*parts, rest] if i else None


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs) -> None:
    if setting == "ROOT_URLCONF":
        _SPLIT.clear()
