"""The Provisioning page: SCIM tokens and their recent requests, for IT managers."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from assetsonar.forms import add_service_errors
from provisioning import schema, selectors, services
from provisioning.forms import TokenForm
from provisioning.models import ScimToken

PERMISSION = "provisioning.manage_provisioning"


def _page(request: HttpRequest, form: TokenForm, new_secret: str = "", new_token=None, status=200):
    tokens = selectors.tokens_for_page()
    for token in tokens:
        token.recent = selectors.recent_requests(token=token, limit=20)
    unauthenticated = selectors.recent_requests(token=None, limit=20)
    response = render(
        request,
        "provisioning/page.html",
        {
            "tokens": tokens,
            "unauthenticated": unauthenticated,
            "form": form,
            "new_secret": new_secret,
            "new_token": new_token,
            "base_url": schema.base_url(request),
        },
        status=status,
    )
    # The page that shows a new token must not be kept by a browser or a proxy.
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET"])
@login_required
@permission_required(PERMISSION, raise_exception=True)
def provisioning_page(request: HttpRequest) -> HttpResponse:
    return _page(request, TokenForm())


@require_http_methods(["POST"])
@login_required
@permission_required(PERMISSION, raise_exception=True)
def token_create(request: HttpRequest) -> HttpResponse:
    """Create a token and show its secret on this response only (no redirect: a redirect would
    need the secret stored somewhere to show it again)."""
    form = TokenForm(request.POST)
    if form.is_valid():
        try:
            token, secret = services.scim_token_create(
                name=form.cleaned_data["name"],
                read_only=form.cleaned_data["read_only"],
                actor=request.user,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return _page(request, TokenForm(), new_secret=secret, new_token=token, status=201)
    return _page(request, form, status=400)


@require_http_methods(["POST"])
@login_required
@permission_required(PERMISSION, raise_exception=True)
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ScimToken, pk=pk)
    services.scim_token_revoke(token=token, actor=request.user)
    messages.success(request, f"The token “{token.name}” is revoked; requests with it now get 401.")
    return redirect("provisioning:page")
