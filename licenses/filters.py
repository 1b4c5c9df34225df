"""The license list's search and filters."""

from __future__ import annotations

from datetime import date, timedelta

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone

from assetsonar.selectors import EXPIRY_WARNING_DAYS
from licenses.models import License


class LicenseFilter(django_filters.FilterSet):
    """Search name or vendor; filter by kind and by expiry."""

    q = django_filters.CharFilter(
        method="search",
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name or vendor"}),
    )
    kind = django_filters.ChoiceFilter(choices=License.Kind.choices, empty_label="Any kind")
    expiry = django_filters.ChoiceFilter(
        method="filter_expiry",
        label="Expiry",
        choices=[
            ("expired", "Expired"),
            ("soon", f"Expires within {EXPIRY_WARNING_DAYS} days"),
            ("valid", "Not expired"),
        ],
        empty_label="Any",
    )

    class Meta:
        model = License
        fields: list[str] = []

    def search(self, queryset: QuerySet[License], name: str, value: str) -> QuerySet[License]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(vendor__icontains=value))

    def filter_expiry(self, queryset: QuerySet[License], name: str, value: str):
        today: date = timezone.localdate()
        if value == "expired":
            return queryset.filter(expires_on__lt=today)
        if value == "soon":
            return queryset.filter(
                expires_on__gte=today, expires_on__lte=today + timedelta(days=EXPIRY_WARNING_DAYS)
            )
        if value == "valid":
            return queryset.filter(Q(expires_on__isnull=True) | Q(expires_on__gte=today))
        return queryset
