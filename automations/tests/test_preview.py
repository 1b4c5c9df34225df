"""The deactivation preview (issue 10, "Preview (dry run)"): what deactivating a member would set
off, computed by the code the engine runs, equals what the engine then does (targets per action
and skip reasons), writes nothing, and costs a fixed number of queries; the bulk dialog's totals;
"Who would this run for now" on the automation page, evaluated in the database (conditions as
filters, checked against the engine's own `conditions.matches`)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset
from assetsonar import roles
from automations import conditions as cond
from automations.actions.device_return import NO_DEVICE_INSIGHT
from automations.actions.email import INSIGHTS as EMAIL_INSIGHTS
from automations.actions.mdm_lock import NOT_ENROLLED, NOT_LOCKABLE, SWITCHED_OFF
from automations.actions.revoke_licenses import NOTHING_MATCHED_INSIGHT
from automations.actions.webhook import NO_SECRET_INSIGHT
from automations.models import Action, ActionLog, Automation, Condition, Execution
from automations.selectors_preview import (
    automation_audience,
    member_preview,
    preview_members,
    preview_selection,
)
from automations.tests.engine_factories import (
    SECRET,
    fast_retries,
    make_connection,
    make_device,
    mdm_commands,
    use_sync_q,
)
from automations.tests.servers import WebhookReceiver
from conftest import make_asset, make_entitlement, make_license, make_member, make_user
from licenses.models import License
from members.models import Member
from members.services import member_deactivate

pytestmark = pytest.mark.django_db

BODY = "{{ member.full_name }} left. Devices:\n{{ devices }}\nLicenses:\n{{ licenses }}\n"


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings)
    settings.EMAIL_RETRY_DELAYS = (0,) * 6
    mdm_commands(enabled=True)


@pytest.fixture
def deactivate(django_capture_on_commit_callbacks):
    def run(member):
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=member, actor=None, reason="Left the company")
        return {e.automation_name: e for e in Execution.objects.filter(member=member)}

    return run


def automation(name: str, *actions: tuple[str, dict], conditions=(), match="all", **fields):
    """An automation with `actions` (kind, config, and optionally Action fields) in order."""
    made = Automation.objects.create(name=name, trigger_event="member.deactivated", match=match)
    for position, (field, operator, value) in enumerate(conditions):
        Condition.objects.create(
            automation=made, position=position, field=field, operator=operator, value=value
        )
    for position, (kind, config, *rest) in enumerate(actions):
        extra = rest[0] if rest else {}
        secret = extra.pop("secret", SECRET)
        action = Action(automation=made, kind=kind, position=position, config=config, **extra)
        if kind == "webhook" and secret:
            action.set_secret(secret)
        action.save()
    for name_, value in fields.items():
        setattr(made, name_, value)
    made.save()
    return made


def revoke(**options):
    return ("revoke_licenses", {"user_based": False, "user_machine": False, **options})


LOCK = ("mdm_lock", {"message": "Property of Example Corp.", "phone": "+1 555 0100"})


def webhook(url: str, **extra):
    return ("webhook", {"url": url, "method": "POST"}, extra)


def email(**config):
    return (
        "email",
        {
            "manager": False,
            "member": "",
            "addresses": [],
            "roles": [],
            "subject": "{{ member.full_name }} has left",
            "body": BODY,
            **config,
        },
    )


def device_return(*categories):
    return (
        "device_return",
        {
            "categories": list(categories),
            "reminder_every_days": 7,
            "max_reminders": 3,
            "escalate_to": ["it-ops@example.com"],
            "escalate_to_role": "",
        },
    )


def approval(role: str = "", users=()):
    return ("approval", {"role": role, "users": list(users), "expire_days": 3, "note": ""})


def leaver_with_everything():
    """A leaver with a manager, three licenses (two user-based, one device-based on her laptop),
    an enrolled laptop, a phone not enrolled, a monitor; someone else's license."""
    manager = make_member(full_name="Alex Chen", email="alex.chen@example.com", department="IT")
    lena = make_member(full_name="Lena Leaver", department="Engineering", manager=manager)
    prod = make_connection(name="prod")
    laptop = make_device(lena, prod, "sim-lena-mac", name="MacBook Pro", asset_tag="AS-101")
    phone = make_device(
        lena, None, name="iPhone", asset_tag="AS-102", category="phone", platform="ios"
    )
    make_asset(custodian=lena, asset_tag="AS-103", category="monitor", platform="none")
    figma, slack = make_license(name="Figma"), make_license(name="Slack", kind=License.Kind.CLOUD)
    make_entitlement(license=figma, member=lena)
    make_entitlement(license=slack, member=lena)
    make_entitlement(license=make_license(name="CAD", kind=License.Kind.DEVICE), asset=laptop)
    make_entitlement(license=figma, member=make_member(department="Engineering"))
    return lena, laptop, phone


# --- The comparison --------------------------------------------------------------------------


def planned(step) -> dict[str, str]:
    """What the preview says of a step's logged targets: label → skip reason ("" = done)."""
    return {t.label: t.skip_reason for t in step.targets if t.logged}


def done(execution, action) -> dict[str, str]:
    """What the engine did: label → insight of a log not acted on ("" = succeeded)."""
    out = {}
    for log in ActionLog.objects.filter(execution=execution, action=action):
        assert log.status in (ActionLog.Status.SUCCEEDED, ActionLog.Status.SKIPPED, "failed"), log
        acted = log.status == ActionLog.Status.SUCCEEDED
        out[log.target_label] = "" if acted else log.insight
    return out


def same_lock(insight: str) -> str:
    # The engine names the earlier automation's execution; the preview, run before it, cannot.
    return re.sub(
        r"by execution \d+ \(automation (“[^”]+”)\)", r"by automation \1 before it", insight
    )


def test_the_preview_is_what_the_engine_then_does(deactivate, smtp_server):
    lena, laptop, phone = leaver_with_everything()
    with WebhookReceiver() as receiver:
        automation(
            "A · Offboard engineers",
            revoke(user_based=True, device_based=True),
            LOCK,
            webhook(receiver.url()),
            email(manager=True, roles=[roles.VIEWER]),
            device_return("laptop"),
            conditions=[("department", "is", "engineering")],
        )
        automation("B · Lock again", LOCK, revoke(user_based=True), device_return())
        automation(
            "C · Webhook switched off after a 410",
            webhook(receiver.url(), disabled_at=timezone.now() - timedelta(days=1)),
        )
        automation("D · Sales only", LOCK, conditions=[("department", "is", "Sales")])
        automation("E · Switched off", LOCK, enabled=False)

        preview = member_preview(lena)
        executions = deactivate(lena)
        receiver.wait_for(1)

    runs = {run.automation.name: run for run in preview.runs}
    assert list(runs) == [
        "A · Offboard engineers",
        "B · Lock again",
        "C · Webhook switched off after a 410",
    ]
    assert set(executions) == set(runs)
    a = runs["A · Offboard engineers"]
    assert [s.action.kind for s in a.steps] == [
        "revoke_licenses",
        "mdm_lock",
        "webhook",
        "email",
        "device_return",
    ]
    revoke_a, lock_a, hook_a, email_a, return_a = a.steps
    # The concrete targets: these 3 licenses, the laptop via the MDM, the phone skipped, the
    # monitor passed over, a webhook to the receiver, the manager and a role nobody holds.
    assert planned(revoke_a) == {"CAD on AS-101": "", "Figma": "", "Slack": ""}
    assert revoke_a.count_label == "3 license seats"
    lock_targets = {t.label: t for t in lock_a.targets}
    assert lock_targets[str(laptop)].via == "via Simulator (demo) “prod”"
    assert planned(lock_a)[str(laptop)] == ""
    assert planned(lock_a)[str(phone)] == NOT_ENROLLED
    (monitor,) = [t for t in lock_a.targets if not t.logged]
    assert monitor.skip_reason == NOT_LOCKABLE
    assert planned(hook_a) == {f"127.0.0.1:{receiver.port}": ""}
    assert planned(email_a) == {
        "alex.chen@example.com": "",
        "Viewer": EMAIL_INSIGHTS["role_empty"].format(role="Viewer"),
    }
    assert planned(return_a) == {str(laptop): ""}
    b = runs["B · Lock again"].steps
    # What A takes first, B does not get: the lock in force, the seats, the open return.
    assert planned(b[0])[str(laptop)] == (
        "Already locked by automation “A · Offboard engineers” before it, PIN kept."
    )
    assert planned(b[1]) == {"Lena Leaver": NOTHING_MATCHED_INSIGHT}
    assert planned(b[2])[str(laptop)].startswith("Already requested ")
    (c,) = runs["C · Webhook switched off after a 410"].steps
    assert c.targets[0].unmet and c.targets[0].skip_reason.startswith("Webhook disabled on ")

    for name, run in runs.items():
        for step in run.steps:
            engine = {k: same_lock(v) for k, v in done(executions[name], step.action).items()}
            assert engine == planned(step), (name, step.action.kind)


def test_skip_reasons_known_before_sending_are_the_engines(deactivate, smtp_server, it_manager):
    """MDM commands switched off, no manager, no device of the kind, no license, no signing
    secret, no approver: the preview's reasons are the logs' insights word for word."""
    mdm_commands(enabled=False)
    group = Group.objects.create(name="Nobody holds this")
    noah = make_member(full_name="Noah Nomanager", department="Engineering")
    laptop = make_device(noah, make_connection(name="prod"), "sim-noah")
    automation(
        "Offboard",
        LOCK,
        email(manager=True, member="work"),
        device_return("tablet"),
        revoke(user_based=True),
        webhook("https://hr.example.com/hooks", secret=""),
    )
    automation("Approve first", approval(role=group.name))
    automation("Approved by Ida", approval(users=[it_manager.username]), LOCK)

    previews = preview_members([noah.pk])
    executions = deactivate(noah)

    runs = {run.automation.name: run for run in previews[noah.pk].runs}
    lock, mail, returns, licenses, hook = runs["Offboard"].steps
    assert planned(lock) == {str(laptop): SWITCHED_OFF}
    assert lock.targets[0].unmet
    assert planned(mail) == {
        "Manager": EMAIL_INSIGHTS["no_manager"].format(member="Noah Nomanager"),
        noah.email: "",
    }
    assert planned(returns) == {"Noah Nomanager": NO_DEVICE_INSIGHT}
    assert planned(licenses) == {"Noah Nomanager": NOTHING_MATCHED_INSIGHT}
    assert planned(hook) == {"hr.example.com": NO_SECRET_INSIGHT}
    (nobody,) = runs["Approve first"].steps
    assert planned(nobody) == {
        "No approver": "No one could be asked to approve: The Nobody holds this role has no "
        "active users. The actions after this step were not run."
    }
    for name in ("Offboard", "Approve first"):
        for step in runs[name].steps:
            assert done(executions[name], step.action) == planned(step), step.action.kind

    # The step after an approval waits for it: the engine holds it until someone decides.
    ask, held = runs["Approved by Ida"].steps
    assert planned(ask) == {it_manager.get_full_name() or it_manager.username: ""}
    log = ActionLog.objects.get(execution=executions["Approved by Ida"], action=ask.action)
    assert (log.status, log.target_label) == ("pending", next(iter(planned(ask))))
    assert held.waits_for == f"approval by {it_manager.username}"
    assert ActionLog.objects.get(
        execution=executions["Approved by Ida"], action=held.action
    ).detail["held_by"] == (ask.action.pk)


def test_a_lock_already_in_force_is_kept_and_said_so(deactivate):
    lena, laptop, phone = leaver_with_everything()
    automation("Lock", LOCK)
    first = deactivate(lena)["Lock"]
    lena.refresh_from_db()
    from members.services import member_reactivate

    member_reactivate(member=lena, actor=None)
    lena.refresh_from_db()

    (run,) = member_preview(lena).runs

    assert planned(run.steps[0])[str(laptop)] == (
        f"Already locked by execution {first.pk} (automation “Lock”), PIN kept."
    )
    assert not run.steps[0].targets[0].unmet  # kept, not a failure


# --- No side effect, fixed cost -------------------------------------------------------------------


def writes(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if re.match(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", q["sql"], re.IGNORECASE)
    ]


def test_the_preview_writes_nothing(manager_client, smtp_server):
    lena, _, _ = leaver_with_everything()
    automation(
        "Everything",
        revoke(user_based=True, device_based=True),
        LOCK,
        webhook("https://hr.example.com/hooks"),
        email(manager=True),
        device_return(),
        approval(role=roles.IT_MANAGER),
    )
    automation("Again", LOCK, revoke(user_based=True), device_return())
    counts = {m: m.objects.count() for m in (ActionLog, Execution, Asset, License)}
    states = list(Asset.objects.values_list("pk", "lock_state", "status"))
    manager_client.get(reverse("members:list"))  # the session is written once, here

    with CaptureQueriesContext(connection) as queries:
        preview = member_preview(lena)
        member_preview(lena, last_working_day=True)
        preview_selection([lena.pk])
        response = manager_client.get(
            reverse("automations:deactivation_preview"), {"member": lena.pk}
        )

    assert response.status_code == 200
    assert len(preview.runs) == 2 and queries.captured_queries
    assert writes(queries.captured_queries) == []
    assert {m: m.objects.count() for m in counts} == counts
    assert list(Asset.objects.values_list("pk", "lock_state", "status")) == states
    assert smtp_server.messages == []
    lena.refresh_from_db()
    assert lena.status == Member.Status.ACTIVE


def world(size: int):
    """A leaver with `size` licenses, devices and automations with every kind of action."""
    mdm_commands(enabled=True)
    manager = make_member(email=f"boss{size}@example.com")
    lena = make_member(full_name="Lena Leaver", manager=manager)
    prod = make_connection(name=f"prod {size}")
    for n in range(size):
        make_entitlement(license=make_license(name=f"Tool {size}-{n}"), member=lena)
        make_device(lena, prod if n % 2 else None, asset_tag=f"AS-{size}-{n}")
        automation(
            f"Automation {size}-{n}",
            revoke(user_based=True, device_based=True),
            LOCK,
            webhook(f"https://hook{n}.example.com/x"),
            email(manager=True, roles=[roles.IT_MANAGER]),
            device_return(),
            approval(role=roles.IT_MANAGER, users=["ida"]),
            conditions=[("assets_in_custody", "greater_than", 0)],
        )
    return lena


# Automations, their conditions and actions (3); the snapshots: members, custody, live
# entitlements (3); revoke (1); lock: devices, their lock commands, the portal switch (3);
# email: members, the roles' users (2); device return: devices, open requests (2); approval:
# the role's users, the named users (2). Webhooks: none.
MEMBER_PREVIEW_QUERIES = 16


@pytest.mark.parametrize("size", [1, 8])
def test_one_members_preview_costs_a_fixed_number_of_queries(
    size, django_assert_max_num_queries, manager_client
):
    make_user("ida", roles.IT_MANAGER, email="ida@example.com")
    lena = world(size)

    with django_assert_max_num_queries(MEMBER_PREVIEW_QUERIES):
        preview = member_preview(lena)
    # The dialog's request: session, user, permissions (4) + the preview (the last working day's
    # is not worked out: she has none).
    with django_assert_max_num_queries(4 + MEMBER_PREVIEW_QUERIES + 1):
        response = manager_client.get(
            reverse("automations:deactivation_preview"), {"member": lena.pk}
        )

    assert len(preview.runs) == size
    assert all(len(run.steps) == 6 for run in preview.runs)
    first = preview.runs[0].steps
    assert len(first[0].to_do) == size  # every license, for the first automation
    assert response.status_code == 200 and f"Automation {size}-0" in response.text


@pytest.mark.parametrize("size", [2, 12])
def test_the_bulk_totals_cost_a_fixed_number_of_queries(size, django_assert_max_num_queries):
    mdm_commands(enabled=True)
    prod = make_connection(name="prod")
    figma = make_license(name="Figma", seats=100)
    automation(
        "Offboard",
        revoke(user_based=True),
        LOCK,
        webhook("https://hr.example.com/hooks"),
        email(manager=True),
    )
    automation("Engineers", LOCK, conditions=[("department", "is", "Engineering")])
    members = []
    for n in range(size):
        member = make_member(department="Engineering" if n % 2 else "Sales")
        make_entitlement(license=figma, member=member)
        make_device(member, prod if n % 2 else None)
        members.append(member)

    with django_assert_max_num_queries(MEMBER_PREVIEW_QUERIES):
        totals = preview_selection([m.pk for m in members])

    engineers = size // 2
    assert (totals.members, totals.matched) == (size, size)
    assert [(a.name, n) for a, n, _ in totals.runs] == [
        ("Engineers", engineers),
        ("Offboard", size),
    ]
    by_kind = {t.kind.key: t for t in totals.kinds}
    assert list(by_kind) == ["webhook", "revoke_licenses", "mdm_lock", "email"]
    assert (by_kind["revoke_licenses"].to_do, by_kind["webhook"].to_do) == (size, size)
    # Offboard locks the enrolled devices; Engineers finds them locked (kept, not counted).
    lock = by_kind["mdm_lock"]
    assert lock.to_do == engineers
    assert lock.skipped[NOT_ENROLLED] == size - engineers
    assert lock.skipped_count == (size - engineers) + engineers
    # Nobody has a manager: every email is skipped, each with its reason.
    assert (by_kind["email"].to_do, by_kind["email"].skipped_count) == (0, size)


def test_the_bulk_dialog_shows_the_totals(manager_client):
    figma = make_license(name="Figma", seats=100)
    automation("Offboard", revoke(user_based=True), webhook("https://hr.example.com/hooks"))
    members = [make_member(), make_member()]
    for member in members:
        make_entitlement(license=figma, member=member)

    html = manager_client.get(
        reverse("automations:deactivation_preview"),
        {"ids": [m.pk for m in members]},
        HTTP_HX_REQUEST="true",
    ).text

    assert "Offboard" in html and "(for 2 of 2)" in html
    assert re.search(r"Revoke licenses</th>\s*<td[^>]*>2 license seats", html)
    assert re.search(r"Trigger webhook</th>\s*<td[^>]*>2 webhooks", html)


def test_the_dialog_shows_the_last_working_day_too(manager_client):
    lena = make_member(
        full_name="Lena Leaver",
        last_working_day=timezone.localdate() + timedelta(days=3),
        deactivate_on_last_day=True,
    )
    make_entitlement(license=make_license(name="Figma"), member=lena)
    automation("Offboard", revoke(user_based=True))

    html = manager_client.get(reverse("members:deactivate", args=[lena.pk])).text
    last_day = member_preview(lena, last_working_day=True)

    assert "On their last working day" in html
    assert html.count("Figma") == 2  # now, and at the end of the day
    assert last_day.snapshot["last_working_day"] == lena.last_working_day.isoformat()
    assert last_day.snapshot["deactivation_reason"].startswith("Last working day (")


# --- Who would this run for now ---------------------------------------------------------------


def people():
    """Members whose fields differ in case, spacing, emptiness and domain; one deactivated."""
    boss = make_member(full_name="Boss", email="Boss@Example.com", department="Management")
    rows = [
        {"department": "Engineering", "location": "Berlin", "title": "Senior Engineer"},
        {"department": " engineering ", "location": "berlin", "title": "Engineer", "manager": boss},
        {"department": "Sales", "location": "Lisbon", "title": "", "employment_type": "contractor"},
        {"department": "", "location": "", "title": "Contractor", "email": "x@sub.example.com"},
        {"department": "Finance", "location": "Zürich", "email": "y@Other.ORG", "manager": boss},
    ]
    members = [boss] + [make_member(**row) for row in rows]
    make_asset(custodian=members[1])
    make_asset(custodian=members[1])
    make_asset(custodian=members[3])
    make_entitlement(license=make_license(), member=members[4])
    gone = make_member(department="Engineering")
    member_deactivate(member=gone, actor=None, reason="Left")
    return members


CONDITIONS = [
    ("department", "is", "Engineering"),
    ("department", "is_not", "engineering"),
    ("department", "is_any_of", ["sales", "FINANCE"]),
    ("department", "contains", "ngin"),
    ("department", "starts_with", "eng"),
    ("department", "is_empty", None),
    ("department", "is_not_empty", None),
    ("location", "is", "BERLIN"),
    ("title", "contains", "engineer"),
    ("title", "is_empty", None),
    ("employment_type", "is", "contractor"),
    ("employment_type", "is_not", "full_time"),
    ("email_domain", "is", "example.com"),
    ("email_domain", "is_not", "example.com"),
    ("email_domain", "contains", "example"),
    ("email_domain", "starts_with", "sub."),
    ("email_domain", "is_any_of", ["other.org", "sub.example.com"]),
    ("email_domain", "is_empty", None),
    ("manager", "is", "boss@example.com"),
    ("manager", "is_not", "boss@example.com"),
    ("manager", "is_empty", None),
    ("manager", "is_not_empty", None),
    ("employee_id", "starts_with", "e"),
    ("assets_in_custody", "greater_than", 0),
    ("assets_in_custody", "is", 2),
    ("assets_in_custody", "is_not", 0),
    ("live_entitlements", "less_than", 1),
]


def engine_matches(conditions, match="all") -> set[int]:
    class Row:
        def __init__(self, field, operator, value):
            self.field, self.operator, self.value = field, operator, value

    active = Member.objects.filter(status="active").values_list("pk", flat=True)
    rows = [Row(*c) for c in conditions]
    return {
        pk
        for pk, snapshot in cond.member_snapshots(active).items()
        if cond.matches(rows, match, snapshot)
    }


def test_every_condition_as_a_database_filter_selects_what_the_engine_matches():
    people()
    for field, operator, value in CONDITIONS:
        q = cond.condition_q(field, operator, value)
        assert q is not None, (field, operator)
        in_db = set(Member.objects.filter(status="active").filter(q).values_list("pk", flat=True))
        assert in_db == engine_matches([(field, operator, value)]), (field, operator, value)


@pytest.mark.parametrize("match", ["all", "any"])
def test_who_would_this_run_for_matches_any_and_all_like_the_engine(match):
    people()
    conditions = [("department", "is", "engineering"), ("assets_in_custody", "greater_than", 0)]
    made = automation("Check", LOCK, conditions=conditions, match=match)

    audience = automation_audience(made)

    assert audience.in_database and audience.status == "active"
    found = set(audience.queryset.values_list("pk", flat=True))
    assert found == engine_matches(conditions, match)
    assert len(found) == (1 if match == "all" else 3)


def test_a_value_outside_ascii_is_checked_member_by_member_bounded(
    django_assert_max_num_queries, manager_client
):
    people()
    conditions = [("location", "is", "zürich"), ("department", "is_not_empty", None)]
    made = automation("Zürich", LOCK, conditions=conditions)
    made = Automation.objects.prefetch_related("conditions").get(pk=made.pk)

    with django_assert_max_num_queries(2 + 3):
        audience = automation_audience(made)

    assert not audience.in_database
    assert audience.left_out == ["location is zürich"]
    assert {s["id"] for s in audience.matched} == engine_matches(conditions)
    assert len(audience.matched) == 1 and audience.checked == audience.of == 5

    page = manager_client.get(made.get_absolute_url()).text
    assert "Checked member by member, not in the database: location is zürich" in page
    assert "Of the first 5 active members (of 5), <strong>1</strong> match" in page


@pytest.mark.parametrize("size", [3, 30])
def test_the_automation_page_says_who_it_would_run_for_within_a_budget(
    size, manager_client, django_assert_max_num_queries
):
    for n in range(size):
        make_member(full_name=f"Eng {n:02d}", department="Engineering")
        make_member(department="Sales")
    made = automation(
        "Engineers", LOCK, conditions=[("department", "is", "engineering")], enabled=False
    )

    with django_assert_max_num_queries(14):
        page = manager_client.get(made.get_absolute_url()).text
    with django_assert_max_num_queries(10):
        everyone = manager_client.get(reverse("automations:audience", args=[made.pk])).text

    assert f"<strong>{size}</strong> active member" in page
    assert "Eng 00" in page and "Switched off: check before enabling it" in page
    assert ("All of them" in page) == (size > 10)
    assert "Eng 00" in everyone and f"Eng {size - 1:02d}" in everyone
    assert "Sales" not in everyone.split("audience-members")[1]


def test_an_action_after_a_gate_says_what_it_waits_for(manager_client):
    lena = make_member(full_name="Lena Leaver")
    make_entitlement(license=make_license(name="Figma"), member=lena)
    automation(
        "Tell HR first",
        webhook("https://hr.example.com/hooks", continue_on_error=False),
        revoke(user_based=True),
    )

    (run,) = member_preview(lena).runs
    html = manager_client.get(reverse("automations:deactivation_preview"), {"member": lena.pk}).text

    assert [s.waits_for for s in run.steps] == ["", "“Trigger webhook” (action 1) to succeed"]
    assert "Waits for “Trigger webhook” (action 1) to succeed." in html


def test_a_reactivation_automation_is_checked_against_deactivated_members(manager_client):
    back = make_member(full_name="Back Again", department="Sales")
    member_deactivate(member=back, actor=None, reason="Left")
    make_member(full_name="Still Here", department="Sales")
    made = automation("Welcome back", LOCK, conditions=[("department", "is", "sales")])
    made.trigger_event = "member.reactivated"
    made.save()

    audience = automation_audience(made)
    page = manager_client.get(made.get_absolute_url()).text

    assert audience.status == "deactivated"
    assert list(audience.queryset.values_list("full_name", flat=True)) == ["Back Again"]
    assert "<strong>1</strong> deactivated member matches its conditions now" in page
    assert "if they were reactivated" in page and "Still Here" not in page
