"""The asset list's search and filters (django-filter validates them like a form)."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from assets.models import Asset
from members.selectors import member_departments


class AssetFilter(django_filters.FilterSet):
    """Search by tag, serial or name prefix; filter by status, category, platform, MDM enrolment
    and the custodian's department."""

    q = django_filters.CharFilter(
        method="search",
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Tag, serial number or name"}
        ),
    )
    status = django_filters.ChoiceFilter(
        choices=Asset.Status.choices, empty_label="Any status", method="filter_status"
    )
    category = django_filters.ChoiceFilter(
        choices=Asset.Category.choices, empty_label="Any category"
    )
    platform = django_filters.ChoiceFilter(
        choices=Asset.Platform.choices, empty_label="Any platform"
    )
    department = django_filters.ChoiceFilter(
        field_name="custodian__department",
        label="Custodian's department",
        empty_label="Any department",
    )
    mdm = django_filters.ChoiceFilter(
        method="filter_mdm",
        label="MDM",
        choices=[("enrolled", "Enrolled"), ("not_enrolled", "Not enrolled")],
        empty_label="Any",
    )

    class Meta:
        model = Asset
        fields: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Computed once here: a callable would be re-run on every validation and rendering.
        # A loose index scan, not a DISTINCT over every member (members/selectors.py).
        departments = member_departments()
        self.filters["department"].extra["choices"] = [(d, d) for d in departments]

    def search(self, queryset: QuerySet[Asset], name: str, value: str) -> QuerySet[Asset]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(asset_tag__istartswith=value)
            | Q(serial_number__istartswith=value)
            | Q(name__istartswith=value)
        )

    def filter_status(self, queryset: QuerySet[Asset], name: str, value: str) -> QuerySet[Asset]:
        # "In custody" means held: a device whose return is requested is still in custody.
        if value == Asset.Status.IN_CUSTODY:
            return queryset.filter(status__in=Asset.CUSTODY_STATUSES)
        return queryset.filter(status=value) if value else queryset

    def filter_mdm(self, queryset: QuerySet[Asset], name: str, value: str) -> QuerySet[Asset]:
        enrolled = Q(mdm_connection__isnull=False) & ~Q(mdm_device_id="")
        if value == "enrolled":
            return queryset.filter(enrolled)
        if value == "not_enrolled":
            return queryset.exclude(enrolled)
        return queryset
