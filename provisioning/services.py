"""Writes of the provisioning app: SCIM tokens, and SCIM users through the member services.

A SCIM write changes a member only through members.services (member_create / member_update /
member_deactivate / member_reactivate), inside one transaction: the row lock, the single
automation event of a deactivation and the audit rows are theirs, and a request that fails
half-way changes nothing.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, Value
from django.db.models.functions import Lower
from django.utils import timezone
from pydantic import ValidationError as PydanticValidationError
from scim2_models import Address, SCIMException

from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent, PortalSettings
from members.forms import MemberForm
from members.models import Member
from members.services import member_create, member_deactivate, member_reactivate, member_update
from provisioning.errors import ScimError, invalid_value, uniqueness
from provisioning.models import ScimRequest, ScimToken
from provisioning.resources import (
    Desired,
    describe_validation_error,
    desired_fields,
    user_from_member,
    user_version,
)

TOKEN_PREFIX = "assc_"  # noqa: S105 - a label in front of the random part, not a secret


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def scim_token_create(*, name: str, read_only: bool, actor: Any) -> tuple[ScimToken, str]:
    """Create a token. Returns it and its secret, which is shown this once and never stored."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Name the token after the identity provider using it."})
    if ScimToken.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": "Another token already has this name."})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ScimToken(
        name=name,
        read_only=read_only,
        prefix=secret[:12],
        token_hash=token_hash(secret),
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    token.full_clean()
    token.save()
    audit_record(
        action=AuditEvent.Action.CREATED,
        actor=actor,
        obj=token,
        message=f"SCIM token ({token.scope.lower()})",
    )
    return token, secret


@transaction.atomic
def scim_token_revoke(*, token: ScimToken, actor: Any) -> ScimToken:
    """Revoke a token: every later request with it gets 401. A no-op if already revoked."""
    locked = ScimToken.objects.select_for_update().get(pk=token.pk)
    if locked.revoked_at is not None:
        return locked
    locked.revoked_at = timezone.now()
    locked.revoked_by = actor if getattr(actor, "is_authenticated", False) else None
    locked.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(
        action=AuditEvent.Action.CHANGED, actor=actor, obj=locked, message="SCIM token revoked"
    )
    return locked


def scim_token_touch(*, token: ScimToken, ip: str | None) -> None:
    """Record the token's last use. At most one write a minute per token and address."""
    now = timezone.now()
    if (
        token.last_used_at
        and token.last_used_from == ip
        and (now - token.last_used_at).total_seconds() < 60
    ):
        return
    ScimToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_from=ip)


# The request log is pruned every this many rows (one DELETE on the indexed `at`, no schedule).
PRUNE_EVERY = 500


def scim_request_record(**fields: Any) -> ScimRequest:
    """Log one SCIM request (outside the request's transaction, so failures are kept), and
    every PRUNE_EVERY rows drop those older than SCIM_REQUEST_LOG_DAYS."""
    fields["path"] = fields["path"][:300]
    fields["detail"] = fields.get("detail", "")[:500]
    row = ScimRequest.objects.create(**fields)
    if row.pk % PRUNE_EVERY == 0:
        cutoff = timezone.now() - timedelta(days=settings.SCIM_REQUEST_LOG_DAYS)
        ScimRequest.objects.filter(at__lt=cutoff).delete()
    return row


# Member form field -> the SCIM attribute a client sent it as.
ATTRIBUTE_OF = {
    "full_name": "name.formatted",
    "email": "emails.value",
    "employee_id": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "department": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "location": "addresses.locality",
    "title": "title",
    "manager": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "external_id": "externalId",
    "scim_user_name": "userName",
    "given_name": "name.givenName",
    "family_name": "name.familyName",
    "last_working_day": "urn:ietf:params:scim:schemas:extension:assetsonar:2.0:User:lastWorkingDay",
    "__all__": "User",
}


def _resolve_manager(ref: str | None) -> Member | None:
    if not ref:
        return None
    # The SCIM id first (what Entra and Okta send once the manager is provisioned), then the
    # identity provider's own id, then an email address.
    queryset = Member.objects.filter(scim_hidden_at__isnull=True)
    manager = None
    if ref.isdigit() and len(ref) < 19:
        manager = queryset.filter(pk=int(ref)).first()
    if manager is None:
        manager = queryset.filter(external_id=ref).first() if len(ref) <= 255 else None
    if manager is None and "@" in ref:
        manager = queryset.alias(e=Lower("email")).filter(e=Lower(Value(ref))).first()
    if manager is None:
        raise invalid_value(f"{ATTRIBUTE_OF['manager']}: no user has the id “{ref}”.")
    return manager


def _raise_form_errors(errors: dict[str, list], codes: dict[str, list[str]]) -> None:
    for field, messages in errors.items():
        attribute = ATTRIBUTE_OF.get(field, field)
        detail = f"{attribute}: {' '.join(str(m) for m in messages)}"
        if "duplicate" in codes.get(field, []) or "unique" in codes.get(field, []):
            raise uniqueness(detail)
        raise invalid_value(detail)


def _validate(desired: Desired, member: Member | None) -> dict[str, Any]:
    """The member fields, validated as strictly as the portal's member form (same messages)."""
    fields = dict(desired.fields)
    manager = _resolve_manager(desired.manager_ref)
    # What SCIM does not send keeps the member's value (a new member: the defaults), so a PUT
    # does not clear what the portal or the HR import set.
    day = desired.extra.get("last_working_day", member.last_working_day if member else None)
    if member:
        option = member.deactivate_on_last_day
    else:
        option = PortalSettings.load().deactivate_on_last_day_default
    form = MemberForm(
        data={
            **{name: fields[name] for name in MemberForm.Meta.fields if name in fields},
            "manager": manager.email if manager else "",
            "employment_type": member.employment_type
            if member
            else Member.EmploymentType.FULL_TIME,
            "personal_email": member.personal_email if member else "",
            "time_zone": member.time_zone if member else "",
            "last_working_day": day.isoformat() if day else "",
            "deactivate_on_last_day": "on" if option else "",
        },
        # A copy: a ModelForm writes the cleaned values onto its instance, and member_update
        # must still see the old ones to know what changed.
        instance=copy.copy(member) if member else Member(),
    )
    if not form.is_valid():
        data = form.errors.get_json_data()
        codes = {field: [e["code"] for e in errs] for field, errs in data.items()}
        _raise_form_errors(form.errors, codes)
    cleaned = form.service_fields()
    user_name = fields["scim_user_name"]
    others = Member.objects.exclude(pk=member.pk) if member else Member.objects.all()
    taken = others.alias(u=Lower("scim_user_name"), e=Lower("email")).filter(
        Q(u=user_name.lower()) | Q(scim_user_name="", e=user_name.lower())
    )
    if taken.exists():
        raise uniqueness("userName: another member already has this user name.")
    for name in ("external_id", "scim_user_name", "given_name", "family_name"):
        cleaned[name] = fields[name]
    return cleaned


def _apply_status(member: Member, active: bool | None, actor: Any, request: Any) -> Member:
    if active is False and member.is_active:
        member, _ = member_deactivate(
            member=member,
            actor=actor,
            reason=f"Deactivated in the identity provider ({actor.audit_message}).",
            request=request,
        )
    elif active is True and not member.is_active:
        member, _ = member_reactivate(member=member, actor=actor, request=request)
    return member


def _saving(fn):
    """Model validation and the database's own constraints (a race) as SCIM errors."""

    def wrapper(*args, **kwargs):
        try:
            with transaction.atomic():
                return fn(*args, **kwargs)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            codes = {}
            if hasattr(exc, "error_dict"):
                codes = {f: [e.code or "" for e in errs] for f, errs in exc.error_dict.items()}
            for field, messages in errors.items():
                if any("already has" in m for m in messages):
                    codes.setdefault(field, []).append("duplicate")
            _raise_form_errors(errors, codes)
            raise invalid_value(" ".join(exc.messages)) from exc
        except IntegrityError as exc:
            raise uniqueness(
                "User: another member already has this email address, user name or employee number."
            ) from exc

    return wrapper


@_saving
def scim_user_create(*, user: Any, actor: Any, request: Any = None) -> Member:
    """Create a member from a SCIM User (deactivated at once when it says active: false).

    A member a SCIM DELETE hid, with the same user name or email, is provisioned again instead:
    the identity provider re-assigning a person must not meet a 409 on a record it cannot see,
    and the person keeps one record with their history.
    """
    desired = desired_fields(user, None)
    returning = _hidden_match(desired)
    if returning is not None:
        locked = Member.objects.select_for_update().get(pk=returning.pk)
        fields = _validate(desired, locked)
        locked.scim_hidden_at = None
        locked.save(update_fields=["scim_hidden_at", "updated_at"])
        audit_record(
            action=AuditEvent.Action.CHANGED,
            actor=actor,
            obj=locked,
            changes={"scim_hidden_at": [str(returning.scim_hidden_at), None]},
            message=f"Provisioned again over SCIM ({actor.audit_message})",
            request=request,
        )
        locked = member_update(member=locked, actor=actor, request=request, **fields)
        if desired.active is None:
            desired.active = True
        return _apply_status(locked, desired.active, actor, request)
    fields = _validate(desired, None)
    member = member_create(actor=actor, request=request, **fields)
    return _apply_status(member, desired.active, actor, request)


def _hidden_match(desired: Desired) -> Member | None:
    user_name = desired.fields["scim_user_name"].lower()
    email = desired.fields["email"].lower()
    return (
        Member.objects.filter(scim_hidden_at__isnull=False)
        .alias(u=Lower("scim_user_name"), e=Lower("email"))
        .filter(Q(u=user_name) | Q(e=email) | Q(scim_user_name="", e=user_name))
        .order_by("pk")
        .first()
    )


def _lock(member: Member, if_match: str | None) -> Member:
    """The member's row, locked; 412 when the client's If-Match names another version. Checked
    under the lock, so two clients holding the same version cannot both write."""
    locked = Member.objects.select_for_update().get(pk=member.pk)
    current = user_version(locked)
    if (
        if_match
        and if_match.strip() != "*"
        and current not in {v.strip() for v in if_match.split(",")}
    ):
        raise ScimError(
            412,
            f"The user changed since version {if_match}; it is now {current}. Read it again "
            "and retry.",
        )
    return locked


@_saving
def scim_user_update(
    *,
    member: Member,
    user: Any,
    actor: Any,
    request: Any = None,
    if_match: str | None = None,
) -> Member:
    """Replace a member's fields from a SCIM User (PUT), then deactivate or reactivate it through
    the member services when `active` changed."""
    locked = _lock(member, if_match)
    desired = desired_fields(user, locked)
    fields = _validate(desired, locked)
    locked = member_update(member=locked, actor=actor, request=request, **fields)
    return _apply_status(locked, desired.active, actor, request)


def _patch_error(exc: SCIMException, operation: Any) -> ScimError:
    """scim2-models' refusal of one PATCH operation, naming the attribute."""
    if isinstance(exc.__cause__, PydanticValidationError):
        # A value of the wrong type (`"active": "maybe"`): the attribute and the reason, not
        # pydantic's multi-line report.
        return invalid_value(describe_validation_error(exc.__cause__))
    detail = exc.detail
    path = str(operation.path) if operation.path else ""
    if path and path.lower() not in detail.lower():
        detail = f"{path}: {detail}"  # "required attribute cannot be unassigned" names none
    return ScimError(exc.status, detail, exc.scim_type)


@_saving
def scim_user_patch(
    *,
    member: Member,
    patch: Any,
    base: str,
    actor: Any,
    request: Any = None,
    if_match: str | None = None,
) -> Member:
    """Apply a SCIM PatchOp (scim2-models applies the operations) to the member as it is under
    the row lock, then save it like a PUT."""
    locked = _lock(member, if_match)
    current = user_from_member(locked, base)
    if not current.addresses:
        # A placeholder work address, so that Entra's `addresses[type eq "work"].locality` finds
        # its target; one still without a locality after the patch is dropped.
        current.addresses = [Address(type="work")]
    # One operation at a time, so that an error can name the attribute it was about; the
    # document is discarded with the transaction when one fails, so the others never apply.
    for operation in patch.operations or []:
        try:
            patch.model_copy(update={"operations": [operation]}).patch(current)
        except SCIMException as exc:
            raise _patch_error(exc, operation) from exc
        except PydanticValidationError as exc:
            raise invalid_value(describe_validation_error(exc)) from exc
    desired = desired_fields(current, locked, complete=True)
    fields = _validate(desired, locked)
    locked = member_update(member=locked, actor=actor, request=request, **fields)
    return _apply_status(locked, desired.active, actor, request)


@transaction.atomic
def scim_user_hide(
    *, member: Member, actor: Any, request: Any = None, if_match: str | None = None
) -> Member:
    """SCIM DELETE: deactivate the member (the automations run) and stop serving it over SCIM.
    The member, their assets and their history stay."""
    locked = _lock(member, if_match)
    if locked.is_active:
        locked, _ = member_deactivate(
            member=locked,
            actor=actor,
            reason=f"Deleted in the identity provider ({actor.audit_message}).",
            request=request,
        )
    locked.scim_hidden_at = timezone.now()
    locked.save(update_fields=["scim_hidden_at", "updated_at"])
    audit_record(
        action=AuditEvent.Action.CHANGED,
        actor=actor,
        obj=locked,
        changes={"scim_hidden_at": [None, locked.scim_hidden_at.isoformat()]},
        message=f"Hidden from SCIM ({actor.audit_message})",
        request=request,
    )
    return locked
