"""Asset pages: list, detail, create, edit, check-out and check-in.

Every view checks the user's permission itself; templates only hide what the user can't use.
"""

from __future__ import annotations

import copy

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods

from assets import selectors, services
from assets.filters import AssetFilter
from assets.forms import AssetForm, CheckInForm, CheckOutForm, MarkUnlockedForm
from assets.models import Asset
from assets.selectors_returns import return_open_for_asset
from assetsonar.audit import audit_for
from assetsonar.forms import add_service_errors
from assetsonar.http import done, resolve_sort
from assetsonar.paging import AFTER_PARAM, paginate

PAGE_SIZE = 50
HISTORY_PAGE_SIZE = 20


ASSET_COLUMNS = {
    "tag": ("Tag", ("asset_tag",)),
    "name": ("Name", ("name",)),
    "category": ("Category", ("category",)),
    "platform": ("Platform", ("platform",)),
    "status": ("Status", ("status",)),
    "custodian": ("Custodian", ("custodian__full_name",)),
}


@require_GET
@login_required
@permission_required("assets.view_asset", raise_exception=True)
def asset_list(request: HttpRequest) -> HttpResponse:
    filterset = AssetFilter(request.GET or None, queryset=selectors.asset_list())
    sort, order_by, headers = resolve_sort(request, ASSET_COLUMNS, "tag")
    page = paginate(
        filterset.qs,
        ordering=order_by,
        per_page=PAGE_SIZE,
        number=request.GET.get("page"),
        after=request.GET.get(AFTER_PARAM),
    )
    template = "assets/asset_list.html"
    if request.htmx and request.htmx.target == "asset-results":
        template += "#results"
    response = render(
        request,
        template,
        {"filter": filterset, "page_obj": page, "sort": sort, "headers": headers},
    )
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _detail_context(request: HttpRequest, asset: Asset) -> dict:
    def page(queryset, param: str):
        return Paginator(queryset, HISTORY_PAGE_SIZE).get_page(request.GET.get(param))

    user = request.user
    can_check_out = asset.status == Asset.Status.AVAILABLE and user.has_perms(
        ["assets.change_asset", "assets.add_custodyrecord"]
    )
    can_check_in = asset.is_held and user.has_perms(
        ["assets.change_asset", "assets.change_custodyrecord"]
    )
    return {
        "asset": asset,
        "custody": page(selectors.asset_custody_history(asset), "custody_page"),
        "live_entitlements": page(selectors.asset_entitlements(asset, live=True), "live_page"),
        "revoked_entitlements": page(
            selectors.asset_entitlements(asset, live=False), "revoked_page"
        ),
        "audit_events": audit_for(asset),
        "open_return": return_open_for_asset(asset) if asset.is_held else None,
        "can_check_out": can_check_out,
        "can_check_in": can_check_in,
        "check_out_form": CheckOutForm() if can_check_out else None,
        "check_in_form": CheckInForm() if can_check_in else None,
    }


@require_GET
@login_required
@permission_required("assets.view_asset", raise_exception=True)
def asset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    asset = selectors.asset_get(pk)
    return render(request, "assets/asset_detail.html", _detail_context(request, asset))


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("assets.add_asset", raise_exception=True)
def asset_create(request: HttpRequest) -> HttpResponse:
    form = AssetForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            asset = services.asset_create(actor=request.user, request=request, **form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Asset {asset.asset_tag} added.")
            return done(request, asset.get_absolute_url())
    return render(request, "assets/asset_form.html", {"form": form, "asset": None})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("assets.change_asset", raise_exception=True)
def asset_edit(request: HttpRequest, pk: int) -> HttpResponse:
    asset = selectors.asset_get(pk)
    # The form writes the input onto its instance while validating; a copy keeps the page
    # header showing the saved values when the input is refused.
    form = AssetForm(request.POST if request.method == "POST" else None, instance=copy.copy(asset))
    if form.is_bound and form.is_valid():
        try:
            asset = services.asset_update(
                asset=asset, actor=request.user, request=request, **form.cleaned_data
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Asset {asset.asset_tag} saved.")
            return done(request, asset.get_absolute_url())
    return render(request, "assets/asset_form.html", {"form": form, "asset": asset})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(["assets.change_asset", "assets.add_custodyrecord"], raise_exception=True)
def asset_check_out(request: HttpRequest, pk: int) -> HttpResponse:
    asset = selectors.asset_get(pk)
    form = CheckOutForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        member = form.cleaned_data["member"]
        try:
            services.asset_check_out(
                asset=asset,
                member=member,
                note=form.cleaned_data["note"],
                actor=request.user,
                request=request,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"{asset.asset_tag} checked out to {member}.")
            return done(request, asset.get_absolute_url())
    template = "assets/asset_check_out.html"
    if request.htmx:
        template += "#form"
    return render(request, template, {"asset": asset, "form": form})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(["assets.change_asset", "assets.change_custodyrecord"], raise_exception=True)
def asset_check_in(request: HttpRequest, pk: int) -> HttpResponse:
    asset = selectors.asset_get(pk)
    form = CheckInForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            services.asset_check_in(
                asset=asset,
                status=form.cleaned_data["status"],
                note=form.cleaned_data["note"],
                actor=request.user,
                request=request,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"{asset.asset_tag} checked in.")
            return done(request, asset.get_absolute_url())
    template = "assets/asset_check_in.html"
    if request.htmx:
        template += "#form"
    return render(request, template, {"asset": asset, "form": form})


@require_http_methods(["GET", "POST"])
@login_required
@permission_required(["assets.change_asset", "assets.execute_mdm_commands"], raise_exception=True)
def asset_mark_unlocked(request: HttpRequest, pk: int) -> HttpResponse:
    """Record that a locked device was unlocked, so that its next offboarding locks it anew.
    The MDM permission, because it decides whether the device's lock is still in force."""
    asset = selectors.asset_get(pk)
    form = MarkUnlockedForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            services.asset_mark_unlocked(
                asset=asset, note=form.cleaned_data["note"], actor=request.user, request=request
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"{asset.asset_tag} marked as unlocked.")
            return done(request, asset.get_absolute_url())
    template = "assets/asset_mark_unlocked.html"
    if request.htmx:
        template += "#form"
    return render(request, template, {"asset": asset, "form": form})
