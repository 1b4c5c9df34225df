"""The placeholder language of email subjects and bodies: `{{ member.full_name }}` and nothing else.

IT managers write these templates in the builder, and member data (names, departments, device
names from an MDM or an HR import) fills them, so neither may run code: no Django template
language here, no filters, tags, attribute walks or loops. A template is literal text with
`{{ name }}` holes, each name one of the registered placeholders below (`PLACEHOLDERS`); an unknown
name or an unbalanced `{{`/`}}` is refused when the template is saved (`validate`), with the list
of known names. Rendering (`render`) only looks names up in that registry.

The HTML part escapes everything: the template's own text and every value (a member named
`<script>` shows as text), and turns line breaks into `<br>`. The plain-text part is raw.

A context (`PlaceholderContext`) is read from the database in a fixed number of queries
(`member_context`); `sample_context()` is the builder's preview member, as the webhook payload
preview has (automations/payloads.py).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.utils import dateformat, timezone
from django.utils.html import escape

Value = str | list[str]

# `{{ member.manager.full_name }}`: lower-case words joined by dots, spaces inside the braces.
_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
_OPEN, _CLOSE = "{{", "}}"
NONE_TEXT = "(none)"


@dataclass(frozen=True)
class PlaceholderContext:
    """What a template is rendered over: one member, their devices and their license seats.

    `member` is a members.Member (its `manager` already loaded), `devices` the assets in their
    custody, `licenses` their live entitlements (each with its `license` and `asset` loaded):
    a render makes no query (see `member_context`).
    """

    member: object
    devices: Sequence[object]
    licenses: Sequence[object]
    portal_url: str


@dataclass(frozen=True)
class Placeholder:
    """One known name: what the builder's help says of it, and how a context gives its value.

    `resolve` returns text, or a list of lines (rendered one per line, `(none)` when empty).
    `is_url` values become links in the HTML part.
    """

    name: str
    description: str
    resolve: Callable[[PlaceholderContext], Value]
    is_url: bool = False


PLACEHOLDERS: dict[str, Placeholder] = {}


def register(
    name: str,
    description: str,
    resolve: Callable[[PlaceholderContext], Value],
    *,
    is_url: bool = False,
) -> Placeholder:
    """Add a placeholder (an action kind may add its own, e.g. a return's due date)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a placeholder name (lower-case words joined by dots).")
    if name in PLACEHOLDERS:
        raise ValueError(f"The placeholder {{{{ {name} }}}} is already registered.")
    placeholder = Placeholder(name, description, resolve, is_url)
    PLACEHOLDERS[name] = placeholder
    return placeholder


class PlaceholderError(ValueError):
    """A template that cannot be rendered; `errors` holds one sentence per problem."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


# --- Parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hole:
    name: str


def _line(template: str, index: int) -> int:
    return template.count("\n", 0, index) + 1


def _shown(name: str) -> str:
    return f"{_OPEN} {name} {_CLOSE}"


def _parse(template: str) -> tuple[list[str | _Hole], list[str]]:
    """The template's literal text and holes, in order, and the problems found."""
    parts: list[str | _Hole] = []
    errors: list[str] = []
    unknown = False
    pos = 0
    while pos <= len(template):
        start = template.find(_OPEN, pos)
        stray = template.find(_CLOSE, pos)
        if stray != -1 and (start == -1 or stray < start):
            errors.append(
                f"“{_CLOSE}” on line {_line(template, stray)} closes no “{_OPEN}”: "
                f"write placeholders as {_shown('member.full_name')}."
            )
            parts.append(template[pos : stray + 2])
            pos = stray + 2
            continue
        if start == -1:
            parts.append(template[pos:])
            break
        parts.append(template[pos:start])
        end = template.find(_CLOSE, start + 2)
        reopened = template.find(_OPEN, start + 2)
        if end == -1 or (reopened != -1 and reopened < end):
            errors.append(
                f"“{_OPEN}” on line {_line(template, start)} is not closed with “{_CLOSE}”."
            )
            parts.append(template[start : start + 2])
            pos = start + 2
            continue
        inner = template[start + 2 : end].strip()
        if not _NAME.fullmatch(inner):
            errors.append(
                f"“{template[start : end + 2]}” on line {_line(template, start)} is not a "
                f"placeholder: write a name from the list, e.g. {_shown('member.full_name')} "
                "(no filters or expressions)."
            )
        elif inner not in PLACEHOLDERS:
            unknown = True
            close = difflib.get_close_matches(inner, PLACEHOLDERS, n=1, cutoff=0.6)
            hint = f" Did you mean {_shown(close[0])}?" if close else ""
            errors.append(
                f"Unknown placeholder {_shown(inner)} on line {_line(template, start)}.{hint}"
            )
        parts.append(_Hole(inner))
        pos = end + 2
    if unknown:
        errors.append(
            "Known placeholders: " + ", ".join(_shown(name) for name in PLACEHOLDERS) + "."
        )
    return parts, errors


def validate(template: str) -> list[str]:
    """The template's problems (unknown names, unbalanced braces), or [] when it renders."""
    return _parse(template)[1]


def placeholders_in(template: str) -> list[str]:
    """The known placeholder names a template uses, in order of first use."""
    names: list[str] = []
    for part in _parse(template)[0]:
        if isinstance(part, _Hole) and part.name in PLACEHOLDERS and part.name not in names:
            names.append(part.name)
    return names


# --- Rendering -------------------------------------------------------------------------------


def _html_text(text: str) -> str:
    return escape(text).replace("\r\n", "\n").replace("\n", "<br>\n")


def _value_html(placeholder: Placeholder, value: Value) -> str:
    if isinstance(value, list):
        return "<br>\n".join(escape(line) for line in value) if value else escape(NONE_TEXT)
    if placeholder.is_url and value.startswith(("https://", "http://")):
        return f'<a href="{escape(value)}">{escape(value)}</a>'
    return _html_text(value)


def _value_text(value: Value) -> str:
    if isinstance(value, list):
        return "\n".join(value) if value else NONE_TEXT
    return value


def render(template: str, context: PlaceholderContext, *, html: bool = False) -> str:
    """The template with every placeholder's value: plain text, or an HTML fragment (everything
    escaped, line breaks as `<br>`). Raises PlaceholderError when `validate` would complain."""
    parts, errors = _parse(template)
    if errors:
        raise PlaceholderError(errors)
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(_html_text(part) if html else part)
            continue
        placeholder = PLACEHOLDERS[part.name]
        value = placeholder.resolve(context)
        out.append(_value_html(placeholder, value) if html else _value_text(value))
    return "".join(out)


def render_subject(template: str, context: PlaceholderContext) -> str:
    """A subject is one line: the plain-text render with every run of whitespace (line breaks
    from a list or from member data included) made one space."""
    return " ".join(render(template, context).split())


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str


def render_message(*, subject: str, body: str, context: PlaceholderContext) -> RenderedMessage:
    """An email's three parts from its two templates: the subject line, the plain-text body and
    the HTML body (a whole document around the escaped fragment)."""
    text = render(body, context)
    fragment = render(body, context, html=True)
    line = render_subject(subject, context)
    document = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(line)}</title></head>\n"
        '<body style="font-family: sans-serif; line-height: 1.5">\n'
        f"{fragment}\n</body></html>\n"
    )
    return RenderedMessage(subject=line, text=text, html=document)


# --- Contexts --------------------------------------------------------------------------------


def member_context(*, member_id: int, portal_url: str | None = None) -> PlaceholderContext:
    """A member's context, read in three queries whatever their number of devices and seats:
    the member with their manager, their devices, their live seats with license and device."""
    from django.db.models import Prefetch

    from assets.models import Asset
    from licenses.models import Entitlement
    from members.models import Member

    member = (
        Member.objects.select_related("manager")
        .prefetch_related(
            Prefetch("assets_in_custody", queryset=Asset.objects.order_by("asset_tag", "id")),
            Prefetch(
                "entitlements",
                queryset=Entitlement.objects.live()
                .select_related("license", "asset")
                .order_by("license__name", "id"),
            ),
        )
        .get(pk=member_id)
    )
    return PlaceholderContext(
        member=member,
        devices=list(member.assets_in_custody.all()),
        licenses=list(member.entitlements.all()),
        portal_url=portal_url if portal_url is not None else settings.PORTAL_URL,
    )


def sample_context(*, portal_url: str | None = None) -> PlaceholderContext:
    """The builder's preview: a sample leaver (unsaved rows, no query), the member the webhook
    payload preview shows."""
    from assets.models import Asset
    from licenses.models import Entitlement, License
    from members.models import Member

    manager = Member(id=1001, full_name="Alex Chen", email="alex.chen@example.com")
    member = Member(
        id=1042,
        full_name="Jordan Rivera",
        given_name="Jordan",
        email="jordan.rivera@example.com",
        employee_id="E01042",
        department="Engineering",
        location="Berlin",
        title="Senior Engineer",
        manager=manager,
        employment_type=Member.EmploymentType.FULL_TIME,
        status=Member.Status.DEACTIVATED,
        deactivated_at=datetime(2026, 11, 28, 9, 30, tzinfo=timezone.get_fixed_timezone(0)),
        deactivation_reason="Last working day",
    )
    # Fields another branch adds to Member (see the resolvers): set as attributes, so the sample
    # works with and without them.
    member.last_working_day = date(2026, 11, 27)
    member.time_zone = "Europe/Berlin"
    member.personal_email = "jordan.r@example.net"
    laptop = Asset(
        asset_tag="AT-00318",
        name="MacBook Pro 14",
        category=Asset.Category.LAPTOP,
        serial_number="C02ZK1XYMD6T",
    )
    phone = Asset(
        asset_tag="AT-00542",
        name="iPhone 15",
        category=Asset.Category.PHONE,
        serial_number="F2LZQ8ABN72J",
    )
    licenses = [
        Entitlement(license=License(name="Adobe Creative Cloud", vendor="Adobe"), member=member),
        Entitlement(license=License(name="Figma", vendor="Figma"), member=member),
        Entitlement(
            license=License(name="JetBrains IntelliJ IDEA", vendor="JetBrains"),
            member=member,
            asset=laptop,
        ),
    ]
    return PlaceholderContext(
        member=member,
        devices=[laptop, phone],
        licenses=licenses,
        portal_url=portal_url if portal_url is not None else settings.PORTAL_URL,
    )


def catalogue(context: PlaceholderContext | None = None) -> list[dict[str, str]]:
    """Every placeholder for the builder's help: name, description and the sample's value."""
    context = context or sample_context()
    return [
        {
            "name": p.name,
            "shown": _shown(p.name),
            "description": p.description,
            "example": _value_text(p.resolve(context)),
        }
        for p in PLACEHOLDERS.values()
    ]


# --- The placeholders ------------------------------------------------------------------------


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return dateformat.format(timezone.localtime(value), "j F Y, H:i")
    if isinstance(value, date):
        return dateformat.format(value, "j F Y")
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


def _member_url(context: PlaceholderContext) -> str:
    member = context.member
    return context.portal_url.rstrip("/") + member.get_absolute_url() if member.pk else ""


def _first_name(member) -> str:
    return member.given_name or (member.full_name.split() or [""])[0]


def _device_line(asset) -> str:
    return " · ".join(part for part in (asset.asset_tag, asset.name, asset.serial_number) if part)


def _license_line(entitlement) -> str:
    license = entitlement.license
    parts = [license.name, license.vendor]
    if entitlement.asset is not None:
        parts.append(f"on {entitlement.asset.asset_tag}")
    return " · ".join(part for part in parts if part)


def _manager(context: PlaceholderContext):
    return context.member.manager


def _register_defaults() -> None:
    m = "member."
    fields = [
        ("full_name", "The member's full name."),
        ("email", "The member's work email address."),
        ("employee_id", "The member's employee ID."),
        ("department", "The member's department."),
        ("location", "The member's location."),
        ("title", "The member's job title."),
        ("deactivation_reason", "Why the member was deactivated, as entered."),
    ]
    for field, description in fields:
        register(m + field, description, lambda c, f=field: _text(getattr(c.member, f)))
    register(m + "first_name", "The member's first name.", lambda c: _first_name(c.member))
    register(
        m + "employment_type",
        "Full-time, part-time, contractor, intern or temporary.",
        lambda c: c.member.get_employment_type_display(),
    )
    register(
        m + "status",
        "Active or deactivated.",
        lambda c: c.member.get_status_display(),
    )
    register(
        m + "deactivated_at",
        "When the member was deactivated (date and time, portal time zone).",
        lambda c: _text(c.member.deactivated_at),
    )
    # last_working_day, time_zone and personal_email are being added to Member on another
    # branch: read defensively until that lands (then plain attribute reads).
    register(
        m + "last_working_day",
        "The member's last working day (empty when not recorded).",
        lambda c: _text(getattr(c.member, "last_working_day", None)),
    )
    register(
        m + "time_zone",
        "The member's time zone, e.g. Europe/Berlin (empty when not recorded).",
        lambda c: _text(getattr(c.member, "time_zone", "")),
    )
    register(
        m + "personal_email",
        "The member's personal email address (empty when not recorded).",
        lambda c: _text(getattr(c.member, "personal_email", "")),
    )
    register(
        m + "url",
        "The member's page in the portal.",
        _member_url,
        is_url=True,
    )
    register(
        m + "manager.full_name",
        "The manager's full name (empty when the member has none).",
        lambda c: _manager(c).full_name if _manager(c) else "",
    )
    register(
        m + "manager.first_name",
        "The manager's first name (empty when the member has none).",
        lambda c: _first_name(_manager(c)) if _manager(c) else "",
    )
    register(
        m + "manager.email",
        "The manager's work email address (empty when the member has none).",
        lambda c: _manager(c).email if _manager(c) else "",
    )
    register(
        "devices",
        "The devices in the member's custody, one per line: asset tag · name · serial number.",
        lambda c: [_device_line(asset) for asset in c.devices],
    )
    register(
        "devices.count",
        "How many devices are in the member's custody.",
        lambda c: str(len(c.devices)),
    )
    register(
        "licenses",
        "The member's license seats, one per line: software · vendor (· on the device).",
        lambda c: [_license_line(entitlement) for entitlement in c.licenses],
    )
    register(
        "licenses.count",
        "How many license seats the member holds.",
        lambda c: str(len(c.licenses)),
    )
    register(
        "portal_url",
        "The portal's address (PORTAL_URL).",
        lambda c: c.portal_url,
        is_url=True,
    )


_register_defaults()
