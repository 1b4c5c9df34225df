"""The members list's search and filters (django-filter); sorting is selectors.member_ordering."""

from __future__ import annotations

from functools import cache

import django_filters
from django import forms

from members import selectors
from members.models import Member


class MemberFilter(django_filters.FilterSet):
    """?q= search, ?status=, ?department=, ?location= and ?holding=1.

    Department and location options are the distinct values in the data (a loose index scan,
    selectors._distinct_values), read only when the form is rendered or a value has to be
    checked (lazy choices), so an htmx refresh of the table without those filters costs no extra
    query. A value that is not an option is ignored.
    """

    q = django_filters.CharFilter(
        method="search",
        label="Search",
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "Name, email or employee ID",
                "autocomplete": "off",
            }
        ),
    )
    status = django_filters.ChoiceFilter(choices=Member.Status.choices, empty_label="Any status")
    department = django_filters.ChoiceFilter(empty_label="Any department")
    location = django_filters.ChoiceFilter(empty_label="Any location")
    holding = django_filters.ChoiceFilter(
        choices=[("1", "Still holds assets or licenses")],
        method="filter_holding",
        label="Holding",
        empty_label="Anyone",
    )

    class Meta:
        model = Member
        fields = ["q", "status", "department", "location", "holding"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read once per request however often the choices are iterated (validation, rendering).
        for name, read in (
            ("department", selectors.member_departments),
            ("location", selectors.member_locations),
        ):
            self.form.fields[name].choices = cache(lambda read=read: [(v, v) for v in read()])

    def search(self, queryset, name, value):
        return selectors.member_search(queryset, value)

    def filter_holding(self, queryset, name, value):
        if value != "1":
            return queryset
        return queryset.filter(selectors.member_holding_filter())
