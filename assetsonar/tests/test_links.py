"""assetsonar.links.pk_url: the same URL as reverse(), at one reverse() per URL name."""

from __future__ import annotations

import pytest
from django.urls import reverse, set_script_prefix

from assetsonar import links
from assetsonar.links import pk_url


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("members:detail", [1]),
        ("members:detail", [987654]),
        ("assets:detail", [42]),
        ("licenses:detail", [7]),
        ("licenses:revoke", [7, 123456]),
        ("automations:detail", [3]),
        ("automations:execution_detail", [10**12]),
        ("automations:approval_detail", [5]),
    ],
)
def test_equals_reverse(name, args):
    assert pk_url(name, *args) == reverse(name, args=args)


def test_reverses_once_per_name(monkeypatch):
    links._SPLIT.clear()
    calls = []
    real = links.reverse
    monkeypatch.setattr(links, "reverse", lambda *a, **k: calls.append(a) or real(*a, **k))
    urls = [pk_url("members:detail", pk) for pk in range(1, 51)]
    assert urls == [reverse("members:detail", args=[pk]) for pk in range(1, 51)]
    assert len(calls) == 1


def test_script_prefix_is_part_of_the_url():
    """Served under a sub-path (FORCE_SCRIPT_NAME), the URLs carry it, as reverse()'s do."""
    try:
        set_script_prefix("/portal/")
        assert pk_url("members:detail", 9) == reverse("members:detail", args=[9])
        assert pk_url("members:detail", 9).startswith("/portal/")
    finally:
        set_script_prefix("/")
    assert pk_url("members:detail", 9) == reverse("members:detail", args=[9])


def test_refuses_what_is_not_a_key():
    with pytest.raises(ValueError):
        pk_url("members:detail", "1/../../admin")


@pytest.mark.django_db
def test_models_get_absolute_url(django_user_model):
    from conftest import make_member

    member = make_member()
    assert member.get_absolute_url() == reverse("members:detail", args=[member.pk])


def test_template_filter_and_tag():
    from django.template import engines

    django_engine = engines["django"]
    html = django_engine.from_string(
        '{{ 5|pk_url:"members:detail" }} {% pk_url "licenses:revoke" 2 3 as u %}{{ u }}'
    ).render({})
    expected = [reverse("members:detail", args=[5]), reverse("licenses:revoke", args=[2, 3])]
    assert html == " ".join(expected)
