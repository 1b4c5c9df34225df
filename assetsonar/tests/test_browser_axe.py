"""Accessibility: axe-core (the engine browser extensions and CI audits use) run in Debian's
Chromium over every page of the portal and the Django admin, with 0 critical and 0 serious
violations as the bar.

The page list is discovered from the URLconf: every route is requested with GET (routes that
answer 405 are POST-only and skipped), and a route with arguments is filled from the seeded demo
company (seed_demo + seed_automation_demo + one deactivation worked off the queue, so executions,
action logs and MDM commands exist). A new route with arguments that nothing here knows how to
fill fails the test with a message saying where to add it, so pages added later are checked too.

axe.min.js is vendored under assetsonar/tests/axe/ (npm's axe-core 4.14.1, MPL-2.0, LICENSE
beside it) for the tests only: it is never served. The portal's Content-Security-Policy refuses
inline and injected <script> tags, so the file's text is run with page.evaluate, which Chromium
runs through the DevTools protocol, outside the page's CSP; the page itself keeps its real CSP
while it is checked.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from axes.models import AccessFailureLog
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django_q.models import Task
from django_q.tasks import async_task

from assetsonar import roles
from automations.engine.events import ensure_sweeper_schedule
from automations.models import Action, Automation
from automations.tests.browser import needs_chromium
from automations.tests.builder_factories import totp_device
from automations.tests.conftest import browser  # noqa: F401  (the Chromium fixture)
from automations.tests.servers import WebhookReceiver
from automations.tests.test_browser_offboarding import work_off_queue
from conftest import make_user
from provisioning.models import ScimToken
from provisioning.services import scim_token_create

pytestmark = needs_chromium

AXE = Path(__file__).parent / "axe" / "axe.min.js"
BAR = ("critical", "serious")


def _routes(resolver: URLResolver | None = None, prefix: str = "", namespace: str = ""):
    """(URL name, kwarg names, route text) of every named route, namespaces included."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            ns = namespace
            if entry.namespace:
                ns = f"{namespace}{entry.namespace}:"
            yield from _routes(entry, route, ns)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{namespace}{entry.name}", _kwarg_names(route), route


def _kwarg_names(route: str) -> list[str]:
    names = re.findall(r"<(?:\w+:)?(\w+)>", route)  # also finds (?P<name>…) of re_path
    return list(dict.fromkeys(names))


def _first(model, **filters):
    obj = model._default_manager.filter(**filters).order_by("pk").first()
    if obj is None:
        raise LookupError(f"the demo data has no {model._meta.verbose_name} matching {filters}")
    return obj


def _portal_fillers():
    """URL name → kwargs taken from the demo data, for portal routes with arguments."""
    from assets.models import Asset, MDMCommand
    from automations.models import Approval, Execution
    from licenses.models import Entitlement
    from members.models import Member

    def member(**f):
        return {"pk": _first(Member, **f).pk}

    def entitlement():
        e = _first(Entitlement, revoked_at__isnull=True)
        return {"pk": e.license_id, "entitlement_pk": e.pk}

    active = {"status": Member.Status.ACTIVE}
    return {
        "members:detail": lambda: member(),
        "members:edit": lambda: member(),
        "members:deactivate": lambda: member(**active),
        "members:reactivate": lambda: member(status=Member.Status.DEACTIVATED),
        "members:delete": lambda: member(),
        "assets:detail": lambda: {"pk": _first(Asset, mdm_commands__isnull=False).pk},
        "assets:edit": lambda: {"pk": _first(Asset).pk},
        "assets:check_out": lambda: {"pk": _first(Asset, custodian__isnull=True).pk},
        "assets:check_in": lambda: {"pk": _first(Asset, custodian__isnull=False).pk},
        "assets:mark_unlocked": lambda: {"pk": _first(Asset, mdm_commands__isnull=False).pk},
        "licenses:detail": lambda: {"pk": _first(Entitlement).license_id},
        "licenses:edit": lambda: {"pk": _first(Entitlement).license_id},
        "licenses:entitle": lambda: {"pk": _first(Entitlement).license_id},
        "licenses:revoke": entitlement,
        "automations:detail": lambda: {"pk": _first(Automation).pk},
        "automations:edit": lambda: {"pk": _first(Automation).pk},
        "automations:audience": lambda: {"pk": _first(Automation).pk},
        "automations:toggle": lambda: {"pk": _first(Automation).pk},
        "automations:switch_on": lambda: {
            "pk": _first(Automation, enabled=False, actions__kind="mdm_lock").pk
        },
        "automations:duplicate": lambda: {"pk": _first(Automation).pk},
        "automations:delete": lambda: {"pk": _first(Automation).pk},
        "automations:rotate_secret": lambda: {"pk": _first(Automation).pk},
        "automations:execution_detail": lambda: {"pk": _first(Execution).pk},
        "automations:execution_retry": lambda: {"pk": _first(Execution).pk},
        # POST only (run now / cancel of a scheduled action): the GET is refused.
        "automations:execution_scheduled": lambda: {
            "pk": _first(Execution).pk,
            "log_id": _first(Execution).logs.order_by("pk").first().pk,
            "verb": "run",
        },
        "automations:member_actions_panel": lambda: {"pk": _first(Execution).member_id},
        "automations:mdm_command_pin": lambda: {"pk": _first(MDMCommand).pk},
        "automations:approval_detail": lambda: {"pk": _first(Approval).pk},
        "provisioning:token_revoke": lambda: {"pk": _first(ScimToken).pk},
    }


def _admin_kwargs(name: str, kwarg_names: list[str]) -> list[dict]:
    """Admin routes: every registered app's index, and each model's views on its first row."""
    from django.contrib.contenttypes.models import ContentType

    from members.models import Member

    short = name.removeprefix("admin:")
    if kwarg_names == ["app_label"]:
        return [{"app_label": label} for label in sorted({m._meta.app_label for m in _registry()})]
    if name == "admin:auth_user_password_change":
        return [{"id": _first(get_user_model(), username="ida").pk}]
    if name == "admin:view_on_site":
        member = _first(Member)
        return [
            {
                "content_type_id": ContentType.objects.get_for_model(Member).pk,
                "object_id": member.pk,
            }
        ]
    for model in _registry():
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        if short.startswith(prefix) and kwarg_names == ["object_id"]:
            return [{"object_id": _first(model).pk}]
    raise LookupError("no admin model owns it")


def _registry():
    return list(admin.site._registry)


def discover_pages() -> list[tuple[str, str]]:
    """(URL name, path) of every route, arguments filled; raises with a clear message for a
    route that cannot be filled."""
    fillers = _portal_fillers()
    pages, problems = [], []
    for name, kwarg_names, route in _routes():
        if not kwarg_names:
            pages.append((name, reverse(name)))
            continue
        try:
            if name in fillers:
                kwargs_list = [fillers[name]()]
            elif name.startswith("admin:"):
                kwargs_list = _admin_kwargs(name, kwarg_names)
            else:
                raise LookupError("no entry in _portal_fillers()")
        except LookupError as error:
            problems.append(
                f"{name} (/{route}) takes {', '.join(kwarg_names)} and cannot be filled: "
                f"{error}. Say which demo object fills it in _portal_fillers() of {__file__}."
            )
            continue
        pages += [(name, reverse(name, kwargs=kwargs)) for kwargs in kwargs_list]
    if problems:
        raise AssertionError("\n".join(problems))
    return pages


def seed_demo_company() -> None:
    """The demo `make run` loads, plus one offboarding worked off the queue."""
    from assetsonar.models import PortalSettings
    from members.models import Member
    from members.services import member_deactivate

    # A transactional test before this one may have flushed what the migrations wrote.
    roles.sync_roles(apps)
    ensure_sweeper_schedule()
    call_command("seed_demo", "--members", "40", stdout=StringIO())
    with WebhookReceiver() as receiver:
        call_command("seed_automation_demo", "--webhook-url", receiver.url(), stdout=StringIO())
        PortalSettings.objects.update(mdm_commands_enabled=True)
        leaver = (
            Member.objects.filter(
                status=Member.Status.ACTIVE, assets_in_custody__mdm_device_id__gt=""
            )
            .order_by("pk")
            .first()
        )
        member_deactivate(member=leaver, actor=None, reason="Left the company")
        work_off_queue()
    # The leaver asked to return their devices, one reminder sent (Returns, the asset's panel).
    from assets.returns import return_requests_open, returns_remind_due

    devices = list(leaver.assets_in_custody.all())
    return_requests_open(member=leaver, assets=devices, actor=None, reminder_every_days=7)
    returns_remind_due(now=timezone.now() + timedelta(days=8))
    # What the admin's other pages list: a task queued, one done and one failed (django-q2), a
    # sign-in refused and one accepted (django-axes), an authenticator of another user.
    async_task("math.floor", 1.5, task_name="queued-for-axe")
    now = timezone.now()
    for ok in (True, False):
        Task.objects.create(
            id=uuid.uuid4().hex,
            name=f"done-{ok}",
            func="math.floor",
            started=now,
            stopped=now,
            success=ok,
            result=None if ok else "ValueError: boom",
        )
    # A lock automation that is switched off (switching it on asks for a one-time password).
    lock = Automation.objects.create(name="Lock leavers' devices (off)", enabled=False)
    Action.objects.create(automation=lock, kind="mdm_lock", config={"message": "Call IT."})
    ida = make_user("ida", roles.IT_MANAGER, roles.MDM_OPERATOR, is_staff=True)
    totp_device(ida)
    # A "Require approval" request waiting for ida: its page and its admin pages (issue 9).
    from automations.models import Approval, Execution

    execution = Execution.objects.order_by("pk").first()
    approval = Approval.objects.create(
        execution=execution,
        member=execution.member,
        note="Check the handover first",
        expires_at=timezone.now() + timezone.timedelta(days=3),
    )
    approval.approvers.add(ida)
    # A leaver in three days, in another zone (Upcoming offboardings' steps and the first
    # member's Offboarding timeline, issue 10): a last-working-day automation two days before,
    # with a delayed action.
    first = Member.objects.order_by("pk").first()
    Member.objects.filter(pk=first.pk).update(
        last_working_day=timezone.localdate() + timedelta(days=3),
        time_zone="America/New_York",
    )
    notify = Automation.objects.create(
        name="Two days before the last day",
        trigger_event="member.last_working_day",
        trigger_options={"offset_days": -2, "at": "09:00"},
    )
    Action.objects.create(
        automation=notify,
        kind="revoke_licenses",
        config={"user_based": True},
        delay=timedelta(days=7),
    )
    client = Client()
    client.post(reverse("login"), {"username": "ida", "password": "wrong"}, REMOTE_ADDR="10.0.0.9")
    client.post(reverse("login"), {"username": "ida", "password": "pw-ida-Secret1"})
    # A SCIM token an identity provider has used once (the provisioning page and its admin).
    token, secret = scim_token_create(name="Okta", read_only=False, actor=ida)
    Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {secret}")
    # The failure log is off in the settings; a row from when it was on is still listed.
    AccessFailureLog.objects.create(
        username="ida",
        ip_address="10.0.0.9",
        user_agent="curl",
        http_accept="*/*",
        path_info="/accounts/login/",
    )


def axe_violations(page, source: str) -> list[dict]:
    page.evaluate(source)
    result = page.evaluate(
        "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
        " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' ' + n.failureSummary)})); }"
    )
    return [v for v in result if v["impact"] in BAR]


def _sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}-Secret1")
    page.click("button[type=submit]")
    page.wait_for_load_state()


@pytest.mark.django_db(transaction=True)
def test_every_portal_and_admin_page_has_no_serious_or_critical_axe_violation(
    live_server,
    browser,  # noqa: F811
):
    seed_demo_company()
    make_user(
        "axe",
        roles.IT_MANAGER,
        roles.MDM_OPERATOR,
        is_staff=True,
        is_superuser=True,
        first_name="Ada",
        last_name="Auditor",
    )
    pages = discover_pages()
    source = AXE.read_text()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    findings: dict[str, list] = {}
    checked, skipped = 0, []

    # Signed out: the sign-in page.
    page.goto(f"{live_server.url}{reverse('login')}")
    findings["login (signed out)"] = axe_violations(page, source)
    _sign_in(page, live_server.url, "axe")
    seen = set()
    for name, path in pages:
        if name in {"logout", "admin:logout"}:
            continue  # a GET would sign the checker out (and is refused: POST only)
        # Asked first outside the page (same cookies): a 405 or a non-HTML answer is no page,
        # and an htmx fragment is checked inside the page that includes it.
        probe = page.request.get(f"{live_server.url}{path}")
        content_type = probe.headers.get("content-type", "")
        if probe.status == 405 or "text/html" not in content_type:
            skipped.append(f"{name} ({probe.status} {content_type.split(';')[0]})")
            continue
        if "<html" not in probe.text()[:500].lower():
            skipped.append(f"{name} (fragment)")
            continue
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state()
        if page.url in seen:
            continue
        seen.add(page.url)
        checked += 1
        violations = axe_violations(page, source)
        if violations:
            findings[f"{name} {path}"] = violations
    # A signed-in user with no role yet gets the no-access page instead of the dashboard.
    make_user("newcomer")
    newcomer = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _sign_in(newcomer, live_server.url, "newcomer")
    newcomer.goto(f"{live_server.url}{reverse('dashboard')}")
    assert "You have no access yet" in newcomer.inner_text("main")
    findings["dashboard (no role)"] = axe_violations(newcomer, source)
    findings = {k: v for k, v in findings.items() if v}
    report = Path(settings.BASE_DIR) / "test-artifacts" / "axe-violations.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps(findings, indent=1, ensure_ascii=False))
    print(f"axe: {checked} pages checked; not pages: {', '.join(skipped)}")
    assert checked > 60, f"only {checked} pages were checked; not pages: {skipped}"
    assert not findings, (
        "\n".join(
            f"{where}: {v['id']} ({v['impact']}) {v['help']}; e.g. {v['nodes'][0]}"
            for where, violations in findings.items()
            for v in violations
        )
        + f"\n(all of it in {report})"
    )
