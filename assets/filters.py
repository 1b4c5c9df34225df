"""The asset list's search and filters (django-filter validates them like a form)."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from assets.models import Asset, ReturnRequest
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


class ReturnFilter(django_filters.FilterSet):
    """The Returns view: status (open, overdue, closed; open by default), the member's
    department, and the member by name or email prefix."""

    STATUSES = [("open", "Open"), ("overdue", "Overdue"), ("closed", "Closed"), ("all", "All")]

    q = django_filters.CharFilter(
        method="search",
        label="Member",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name or email"}),
    )
    status = django_filters.ChoiceFilter(
        choices=STATUSES, method="filter_status", empty_label=None, label="Status"
    )
    department = django_filters.ChoiceFilter(
        field_name="member__department", label="Department", empty_label="Any department"
    )

    class Meta:
        model = ReturnRequest
        fields: list[str] = []

    def __init__(self, data=None, *args, **kwargs):
        data = data.copy() if data is not None else None
        if data is not None and not data.get("status"):
            data["status"] = "open"
        super().__init__(data, *args, **kwargs)
        self.filters["department"].extra["choices"] = [(d, d) for d in member_departments()]

    @property
    def qs(self):
        queryset = super().qs
        # Unbound (no query string): the open requests, as the status filter's default says.
        if not self.is_bound:
            return queryset.filter(closed_at=None)
        return queryset

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(member__full_name__istartswith=value) | Q(member__email__istartswith=value)
        )

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "open":
            return queryset.filter(closed_at=None)
        if value == "overdue":
            return queryset.filter(ReturnRequest.OVERDUE)
        if value == "closed":
            return queryset.filter(closed_at__isnull=False)
        return queryset
