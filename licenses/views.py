"""License pages: list, detail with seat use, create, edit, entitle and revoke.

Every view checks the user's permission itself; templates only hide what the user can't use.
"""

from __future__ import annotations

import copy
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from assetsonar.audit import audit_for
from assetsonar.forms import add_service_errors
from assetsonar.http import done, resolve_sort
from assetsonar.paging import ByIds, CappedPaginator
from assetsonar.selectors import EXPIRY_WARNING_DAYS
from licenses import selectors, services
from licenses.filters import LicenseFilter
from licenses.forms import EntitleForm, LicenseForm, RevokeForm
from licenses.models import License

PAGE_SIZE = 50
# 25 live entitlements a page (the lists' 50 made the license page slower than the admin's
# license change page at 1M members, bench/pages.py): the page also shows the revoked history,
# the entitle form and the audit trail.
ENTITLEMENT_PAGE_SIZE = 25
# The revoked history is the page's second table: its latest rows, paged, so the license page
# renders 35 rows rather than 100 (rendering, not SQL, is most of its time).
REVOKED_PAGE_SIZE = 10
# Revoked rows only accumulate: their count is exact up to here, then "1,000+" (100 pages of
# history; a member's own page and the admin keep all of it). An index-only count of 1,001
# entries; the lists' 10,000 cost ~0.6 ms of this page at 1M members.
REVOKED_COUNT_LIMIT = 1_000

LICENSE_COLUMNS = {
    "name": ("Name", ("name",)),
    "vendor": ("Vendor", ("vendor",)),
    "kind": ("Kind", ("kind",)),
    "seats": ("Seats used", ("seats_used",)),
    "expires": ("Expires", ("expires_on",)),
    "cost": ("Cost", ("cost",)),
}


def _expiry_context() -> dict:
    today = timezone.localdate()
    return {"today": today, "expiry_soon": today + timedelta(days=EXPIRY_WARNING_DAYS)}


@require_GET
@login_required
@permission_required("licenses.view_license", raise_exception=True)
def license_list(request: HttpRequest) -> HttpResponse:
    filterset = LicenseFilter(request.GET or None, queryset=selectors.license_list())
    sort, order_by, headers = resolve_sort(
        request, LICENSE_COLUMNS, "name", numeric=frozenset({"seats", "cost"})
    )
    page = Paginator(filterset.qs.order_by(*order_by), PAGE_SIZE).get_page(request.GET.get("page"))
    template = "licenses/license_list.html"
    if request.htmx and request.htmx.target == "license-results":
        template += "#results"
    response = render(
        request,
        template,
        {
            "filter": filterset,
            "page_obj": page,
            "sort": sort,
            "headers": headers,
            **_expiry_context(),
        },
    )
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _detail_context(
    request: HttpRequest, lic: License, entitle_form: EntitleForm | None = None
) -> dict:
    def page(queryset, param: str, count: int | None = None):
        if count is not None:
            paginator = Paginator(queryset, ENTITLEMENT_PAGE_SIZE)
            paginator.count = count  # already known: no second COUNT over the same rows
        else:
            paginator = CappedPaginator(
                queryset,
                REVOKED_PAGE_SIZE,
                limit=REVOKED_COUNT_LIMIT,
                counted=getattr(lic, "revoked_counted", None),  # read with the license
            )
        return paginator.get_page(request.GET.get(param))

    if entitle_form is None and request.user.has_perm("licenses.add_entitlement"):
        entitle_form = EntitleForm(license=lic)
    return {
        "license": lic,
        "live_entitlements": page(
            ByIds(selectors.license_entitlements(lic, live=True)),
            "live_page",
            count=lic.seats_used,
        ),
        "revoked_entitlements": page(
            selectors.license_entitlements(lic, live=False), "revoked_page"
        ),
        "audit_events": audit_for(lic),
        "entitle_form": entitle_form,
        **_expiry_context(),
    }


@require_GET
@login_required
@permission_required("licenses.view_license", raise_exception=True)
def license_detail(request: HttpRequest, pk: int) -> HttpResponse:
    lic = selectors.license_get(pk, revoked_count_limit=REVOKED_COUNT_LIMIT)
    return render(request, "licenses/license_detail.html", _detail_context(request, lic))


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("licenses.add_license", raise_exception=True)
def license_create(request: HttpRequest) -> HttpResponse:
    form = LicenseForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            lic = services.license_create(actor=request.user, request=request, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"License {lic} added.")
            return done(request, lic.get_absolute_url())
    return render(request, "licenses/license_form.html", {"form": form, "license": None})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("licenses.change_license", raise_exception=True)
def license_edit(request: HttpRequest, pk: int) -> HttpResponse:
    lic = selectors.license_get(pk)
    # Validation writes the input onto the form's instance; the copy keeps the page showing the
    # saved license when the input is refused.
    form = LicenseForm(
        request.POST if request.method == "POST" else None,
        instance=copy.copy(lic),
        seats_used=lic.seats_used,
    )
    if form.is_bound and form.is_valid():
        try:
            lic = services.license_update(
                license=lic, actor=request.user, request=request, **form.cleaned_data
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"License {lic} saved.")
            return done(request, lic.get_absolute_url())
    return render(request, "licenses/license_form.html", {"form": form, "license": lic})


@require_POST
@login_required
@permission_required("licenses.add_entitlement", raise_exception=True)
def license_entitle(request: HttpRequest, pk: int) -> HttpResponse:
    lic = selectors.license_get(pk)
    form = EntitleForm(request.POST, license=lic)
    if form.is_valid():
        try:
            entitlement = services.license_entitle(
                license=lic,
                member=form.cleaned_data.get("member"),
                asset=form.cleaned_data.get("asset"),
                actor=request.user,
                request=request,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"{lic} given to {entitlement.target_label}.")
            return done(request, lic.get_absolute_url())
    if request.htmx:
        return render(
            request,
            "licenses/license_detail.html#entitle",
            {"license": lic, "entitle_form": form},
        )
    return render(
        request, "licenses/license_detail.html", _detail_context(request, lic, entitle_form=form)
    )


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("licenses.change_entitlement", raise_exception=True)
def entitlement_revoke(request: HttpRequest, pk: int, entitlement_pk: int) -> HttpResponse:
    entitlement = selectors.entitlement_get(license_pk=pk, pk=entitlement_pk)
    lic = entitlement.license
    form = RevokeForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        entitlement, changed = services.license_unentitle(
            entitlement=entitlement,
            reason=form.cleaned_data["reason"],
            actor=request.user,
            request=request,
        )
        if changed:
            messages.success(request, f"Revoked {lic} from {entitlement.target_label}.")
        else:
            messages.info(request, f"{lic} was already revoked from {entitlement.target_label}.")
        return done(request, lic.get_absolute_url())
    template = "licenses/entitlement_revoke.html"
    if request.htmx:
        template += "#form"
    response = render(request, template, {"license": lic, "entitlement": entitlement, "form": form})
    if request.htmx and request.method == "GET":
        # The form lands in the page's one revoke dialog (app.js opens it on this event).
        trigger_client_event(response, "open-dialog", {"value": "revoke-dialog"}, after="swap")
    return response
