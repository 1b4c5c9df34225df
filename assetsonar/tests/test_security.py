"""Sign-in, throttling, the audit trail of authentication, and the Content-Security-Policy."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.middleware.csrf import _unmask_cipher_token
from django.test import Client, RequestFactory, override_settings
from django.urls import path, reverse

from assetsonar import urls as root_urls
from assetsonar.models import AuditEvent
from assetsonar.views import permission_denied
from conftest import make_user

ROOT = Path(settings.BASE_DIR)

PORTAL_PAGES = ["dashboard", "members:list", "assets:list", "licenses:list", "automations:list"]


# A root urlconf for this module: the real one plus a view that refuses, so the 403 handler is
# exercised through the whole middleware stack. handler403 must be named by the root urlconf.
def _refuse(request):
    raise PermissionDenied("Only IT managers may do this.")


urlpatterns = [path("test-refused/", _refuse), *root_urls.urlpatterns]
handler403 = root_urls.handler403


def _sign_in(client: Client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


class _HeadParser(HTMLParser):
    """Collects the attributes of <meta> tags and of <body>."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        if tag == "meta" and "name" in attributes:
            self.meta[attributes["name"]] = attributes.get("content", "")
        elif tag == "body":
            self.body = attributes


def _parse(response) -> _HeadParser:
    parser = _HeadParser()
    parser.feed(response.content.decode())
    return parser


# --- Every portal page needs a signed-in user -----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", PORTAL_PAGES)
def test_portal_page_redirects_anonymous_visitor_to_login(client, url_name):
    url = reverse(url_name)

    response = client.get(url)

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={url}"


# --- Sign-in audit trail --------------------------------------------------------------------------


@pytest.mark.django_db
def test_successful_sign_in_writes_audit_event(client):
    user = make_user("ada")

    response = _sign_in(client, "ada", "pw-ada-Secret1")

    assert response.status_code == 302
    assert response.url == reverse("dashboard")
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN)
    assert event.actor == user
    assert event.actor_name == "ada"
    assert event.ip_address == "127.0.0.1"


@pytest.mark.django_db
def test_failed_sign_in_writes_audit_event_with_user_name_but_never_the_password(client):
    make_user("ada")
    tried_password = "Wrong-Horse-Battery-9"

    response = _sign_in(client, "ada", tried_password)

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert event.actor is None
    assert event.actor_name == "ada"
    assert "ada" in event.message
    assert event.ip_address == "127.0.0.1"
    stored = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert tried_password not in stored
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).exists()


@pytest.mark.django_db
def test_failed_sign_in_for_unknown_user_name_is_audited_too(client):
    _sign_in(client, "nobody-here", "whatever-1")

    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert event.actor_name == "nobody-here"


# --- Permission refusals are audited --------------------------------------------------------------


@pytest.mark.django_db
def test_permission_denied_handler_writes_audit_event_and_renders_403(viewer):
    request = RequestFactory().post("/members/7/deactivate/", REMOTE_ADDR="10.1.2.3")
    request.user = viewer

    response = permission_denied(request, PermissionDenied("Needs the IT Manager role."))

    assert response.status_code == 403
    event = AuditEvent.objects.get(action=AuditEvent.Action.PERMISSION_DENIED)
    assert event.actor == viewer
    assert event.actor_name == "viewer"
    assert event.message == "POST /members/7/deactivate/: Needs the IT Manager role."
    assert event.ip_address == "10.1.2.3"


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
def test_view_raising_permission_denied_is_refused_with_403_and_audited(viewer_client, viewer):
    response = viewer_client.get("/test-refused/")

    assert response.status_code == 403
    assert "403.html" in [t.name for t in response.templates]
    event = AuditEvent.objects.get(action=AuditEvent.Action.PERMISSION_DENIED)
    assert event.actor == viewer
    assert event.message == "GET /test-refused/: Only IT managers may do this."


# --- Sign-in throttling (django-axes) -------------------------------------------------------------


@pytest.mark.django_db
def test_sign_in_is_paused_after_too_many_failures_even_with_the_right_password(client):
    make_user("ada")
    make_user("grace")
    limit = settings.AXES_FAILURE_LIMIT
    assert limit == 5

    for _ in range(limit):
        _sign_in(client, "ada", "not-the-password")
    response = _sign_in(client, "ada", "pw-ada-Secret1")

    assert response.status_code == 429
    assert "registration/locked_out.html" in [t.name for t in response.templates]
    text = " ".join(response.content.decode().split())
    assert "is paused for 15 minutes after 5 failed attempts" in text
    assert "_auth_user_id" not in client.session
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_FAILED).count() == limit + 1

    # The lockout is per user name and address: another user from the same address still signs in.
    other = Client()
    assert _sign_in(other, "grace", "pw-grace-Secret1").status_code == 302


@pytest.mark.django_db
def test_a_lockout_is_one_audit_event_of_its_own(client):
    make_user("ada")
    limit = settings.AXES_FAILURE_LIMIT

    for _ in range(limit - 1):
        _sign_in(client, "ada", "not-the-password")
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_LOCKED_OUT).exists()
    _sign_in(client, "ada", "not-the-password")
    # Attempts during the lockout are failed sign-ins, not new lockouts.
    _sign_in(client, "ada", "pw-ada-Secret1")
    _sign_in(client, "ada", "again-wrong")

    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_LOCKED_OUT)
    assert event.actor_name == "ada"
    assert event.ip_address == "127.0.0.1"
    assert event.get_action_display() == "Sign-in locked out"
    assert event.message == (
        "Sign-in for user name “ada” paused for 15 minutes after 5 failed attempts from this "
        "address."
    )


@pytest.mark.django_db
def test_fewer_failures_than_the_limit_do_not_lock_the_user_out(client):
    make_user("ada")

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(client, "ada", "not-the-password")
    response = _sign_in(client, "ada", "pw-ada-Secret1")

    assert response.status_code == 302
    assert "_auth_user_id" in client.session


# --- Content-Security-Policy and the htmx configuration that keeps it strict ----------------------


@pytest.mark.django_db
@pytest.mark.parametrize("signed_in", [False, True], ids=["login-page", "dashboard"])
def test_csp_header_allows_no_inline_or_eval(client, it_manager, signed_in):
    if signed_in:
        client.force_login(it_manager)
        response = client.get(reverse("dashboard"))
    else:
        response = client.get(reverse("login"))

    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy


@pytest.mark.django_db
def test_htmx_config_forbids_eval_inline_styles_and_cross_origin_requests(client):
    page = _parse(client.get(reverse("login")))

    config = json.loads(page.meta["htmx-config"])

    assert config["allowEval"] is False
    assert config["includeIndicatorStyles"] is False
    assert config["selfRequestsOnly"] is True


@pytest.mark.django_db
def test_body_hx_headers_carry_a_csrf_token_that_the_server_accepts(it_manager):
    client = Client(enforce_csrf_checks=True)
    page = _parse(client.get(reverse("login")))

    token = json.loads(page.body["hx-headers"])["X-CSRFToken"]

    assert _unmask_cipher_token(token) == client.cookies[settings.CSRF_COOKIE_NAME].value
    # What htmx does with hx-headers: the token in a header, not in the form.
    response = client.post(
        reverse("login"),
        {"username": "manager", "password": "pw-manager-Secret1"},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 302
    assert "_auth_user_id" in client.session


# --- Templates never need 'unsafe-inline' ---------------------------------------------------------

# Each pattern is something a strict CSP (no 'unsafe-inline', no 'unsafe-eval') blocks in a browser.
INLINE_PATTERNS = {
    "inline <script> with content": re.compile(
        r"<script\b[^>]*>(?=\s*[^\s<])(?:(?!</script).)+</script\s*>", re.I | re.S
    ),
    "<style> element": re.compile(r"<style\b", re.I),
    "style= attribute": re.compile(r"\sstyle\s*=", re.I),
    "inline event handler": re.compile(r"\s(?:on[a-z]+|hx-on[:-][\w:.-]*)\s*=", re.I),
    "javascript: URL": re.compile(r"=\s*[\"']?\s*javascript:", re.I),
}


def _template_files() -> list[Path]:
    dirs = [ROOT / "templates", *ROOT.glob("*/templates")]
    return sorted(
        file
        for directory in dirs
        if not directory.relative_to(ROOT).parts[0].startswith(".")
        for file in directory.rglob("*")
        if file.is_file()
    )


def _inline_code(text: str) -> list[tuple[int, str]]:
    return [
        (text.count("\n", 0, match.start()) + 1, label)
        for label, pattern in INLINE_PATTERNS.items()
        for match in pattern.finditer(text)
    ]


@pytest.mark.parametrize(
    "snippet",
    [
        "<script>alert(1)</script>",
        '<script type="module">\n  import x from "/x.js";\n</script>',
        "<style>.x{}</style>",
        '<div class="a" style="color:red">',
        '<button\n  onclick="go()">',
        '<form hx-on::after-request="this.reset()">',
        '<a href="javascript:void(0)">',
    ],
)
def test_inline_code_detector_catches_what_csp_blocks(snippet):
    assert _inline_code(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        '<script src="/static/js/app.js" defer></script>',
        '<p data-style="x">Turn on=off</p>',
        '<progress class="seat-meter" value="3" max="5"></progress>',
    ],
)
def test_inline_code_detector_leaves_external_scripts_and_plain_markup_alone(snippet):
    assert not _inline_code(snippet)


def test_no_template_contains_inline_script_or_style():
    files = _template_files()
    assert ROOT / "templates" / "base.html" in files

    found = [
        f"{file.relative_to(ROOT)}:{line}: {label}"
        for file in files
        for line, label in _inline_code(file.read_text(encoding="utf-8"))
    ]

    assert not found, "The CSP blocks these; move them to static/ files:\n" + "\n".join(found)
