"""Reads of the provisioning app."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from members.models import Member
from provisioning.errors import not_found
from provisioning.filters import with_filter_aliases
from provisioning.models import ScimRequest, ScimToken


def scim_users() -> QuerySet[Member]:
    """The members served over SCIM: all but those a SCIM DELETE hid."""
    return with_filter_aliases(Member.objects.filter(scim_hidden_at__isnull=True))


def scim_user_get(user_id: str) -> Member:
    member = (
        Member.objects.filter(pk=int(user_id), scim_hidden_at__isnull=True).first()
        if user_id.isdigit() and len(user_id) < 19  # a bigint; longer ids match nobody
        else None
    )
    if member is None:
        raise not_found(f"There is no user with the id “{user_id}”.")
    return member


def tokens_for_page() -> list[ScimToken]:
    """Every token, with its request counts; active ones first."""
    return list(
        ScimToken.objects.select_related("created_by", "revoked_by")
        .annotate(
            request_count=Count("requests"),
            failure_count=Count("requests", filter=Q(requests__status__gte=400)),
        )
        .order_by("revoked_at", "name")
    )


def recent_requests(*, token: ScimToken | None = None, limit: int = 50) -> list[ScimRequest]:
    """A token's most recent failed requests, then its most recent others, each newest first.

    Two queries, so that a failure stays on the page however many successful requests (an
    identity provider's polling) came after it."""
    queryset = ScimRequest.objects.select_related("member", "token")
    queryset = queryset.filter(token=token) if token else queryset.filter(token__isnull=True)
    queryset = queryset.order_by("-at", "-id")
    failed = list(queryset.filter(status__gte=400)[:limit])
    succeeded = list(queryset.filter(status__lt=400)[:limit])
    return failed + succeeded
