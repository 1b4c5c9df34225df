"""assetsonar.paging.counts_at_once: several capped counts in one query, each equal to the
count CappedPaginator would give on its own."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assetsonar.paging import CappedPaginator, counts_at_once
from conftest import make_member
from members.models import Member

pytestmark = pytest.mark.django_db


def test_each_count_equals_its_own_capped_count_in_one_query():
    for n in range(7):
        make_member(department="Sales" if n % 2 else "Legal")
    asks = {
        "all": (Member.objects.all(), None),
        "capped": (Member.objects.all(), 5),
        "exactly_at_limit": (Member.objects.filter(department="Legal"), 4),
        "under": (Member.objects.filter(department="Sales"), 10),
        "none": (Member.objects.filter(department="Nowhere"), 3),
    }
    with CaptureQueriesContext(connection) as captured:
        counted = counts_at_once(asks)
    assert len(captured) == 1
    assert counted == {
        "all": (7, False),
        "capped": (5, True),
        "exactly_at_limit": (4, False),
        "under": (3, False),
        "none": (0, False),
    }
    for name, (queryset, limit) in asks.items():
        if limit is not None:
            alone = CappedPaginator(queryset, 10, limit=limit)
            assert counted[name] == (alone.count, alone.capped), name


def test_nothing_asked_is_no_query():
    with CaptureQueriesContext(connection) as captured:
        assert counts_at_once({}) == {}
    assert len(captured) == 0


def test_a_queryset_that_matches_nothing_by_construction_counts_zero():
    make_member()
    counted = counts_at_once(
        {"empty": (Member.objects.filter(pk__in=[]), 10), "all": (Member.objects.all(), None)}
    )
    assert counted == {"empty": (0, False), "all": (1, False)}
