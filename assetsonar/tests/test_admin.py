"""The Django admin for support staff: every page loads, writes go through the services, history
stays read-only, and changelists cost the same number of queries whatever the data size."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from assets.models import Asset, CustodyRecord, MDMConnection
from assetsonar import roles
from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent, PortalSettings
from conftest import make_asset, make_entitlement, make_license, make_member, make_user
from licenses.models import Entitlement, License
from members.models import Member

pytestmark = pytest.mark.django_db

# (app label, model name, whether the admin offers "Add")
ADMIN_MODELS = [
    ("members", "member", True),
    ("assets", "asset", True),
    ("assets", "custodyrecord", False),
    ("assets", "mdmconnection", True),
    ("licenses", "license", True),
    ("licenses", "entitlement", False),
    ("assetsonar", "auditevent", False),
    ("assetsonar", "portalsettings", False),
]


def admin_url(app: str, model: str, view: str, *args) -> str:
    return reverse(f"admin:{app}_{model}_{view}", args=args)


def messages_of(response) -> list[str]:
    """Messages not shown yet (earlier requests' too, as no page displayed them)."""
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def sample(db):
    """One row of every model the admin shows, keyed by model name."""
    holder = make_member(full_name="Hana Holder")
    laptop = make_asset(custodian=holder)
    lic = make_license(name="Slack", seats=5)
    entitlement = make_entitlement(license=lic, member=holder)
    event = audit_record(action=AuditEvent.Action.CREATED, obj=holder, message="Seeded")
    return {
        "member": holder,
        "asset": laptop,
        "custodyrecord": CustodyRecord.objects.get(asset=laptop),
        "mdmconnection": MDMConnection.objects.create(name="Simulator", provider="simulator"),
        "license": lic,
        "entitlement": entitlement,
        "auditevent": event,
        "portalsettings": PortalSettings.load(),
    }


@pytest.fixture
def support_client(support_staff):
    client = Client()
    client.force_login(support_staff)
    return client


@pytest.fixture
def staff_manager_client(db):
    client = Client()
    client.force_login(make_user("staffmanager", roles.IT_MANAGER, is_staff=True))
    return client


def action(client, app: str, model: str, name: str, objects, **extra):
    data = {"action": name, "_selected_action": [o.pk for o in objects], **extra}
    if "post" not in extra:
        data["index"] = "0"  # the changelist's own action form
    return client.post(admin_url(app, model, "changelist"), data)


def change_form_data(response, **changes) -> dict:
    """The POST a browser would send back from a change page, with `changes` applied."""
    form = response.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name, value in management.initial.items():
            data[f"{management.prefix}-{name}"] = value
    data.update(changes)
    data["_save"] = "Save"
    return {k: v for k, v in data.items() if v is not False}


# --- Every page loads ----------------------------------------------------------------------------


@pytest.mark.parametrize(("app", "model", "addable"), ADMIN_MODELS)
def test_every_admin_page_loads_for_a_superuser(admin_client, sample, app, model, addable):
    changelist = admin_client.get(admin_url(app, model, "changelist"), follow=True)
    assert changelist.status_code == 200
    add = admin_client.get(admin_url(app, model, "add"))
    assert add.status_code == (200 if addable else 403)
    change = admin_client.get(admin_url(app, model, "change", sample[model].pk))
    assert change.status_code == 200


@pytest.mark.parametrize(("app", "model", "_addable"), ADMIN_MODELS)
def test_support_staff_may_look_but_not_add_or_change(support_client, sample, app, model, _addable):
    assert support_client.get(admin_url(app, model, "changelist"), follow=True).status_code == 200
    assert support_client.get(admin_url(app, model, "add")).status_code == 403
    change = support_client.get(admin_url(app, model, "change", sample[model].pk))
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()


def test_admin_searches_and_filters_load(admin_client, sample):
    pages = [
        admin_url("members", "member", "changelist") + "?q=hana&status__exact=active",
        admin_url("members", "member", "changelist") + "?department=Engineering",
        admin_url("assets", "asset", "changelist") + "?q=hana&status__exact=in_custody",
        admin_url("licenses", "license", "changelist") + "?q=slack&kind__exact=user&o=4",
        admin_url("licenses", "entitlement", "changelist") + "?live=yes&q=hana",
        admin_url("assets", "custodyrecord", "changelist") + "?open=yes&q=hana",
        admin_url("assetsonar", "auditevent", "changelist") + "?action__exact=created&q=hana",
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert response.context["cl"].result_count == 1, url


def test_manager_autocomplete_finds_members(admin_client, sample):
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {"term": "hana", "app_label": "members", "model_name": "member", "field_name": "manager"},
    )
    assert [r["text"] for r in response.json()["results"]] == ["Hana Holder"]


# --- Members -------------------------------------------------------------------------------------


def test_deactivate_action_asks_for_a_reason_then_calls_the_service(admin_client, admin_user):
    alice, bob = make_member(full_name="Alice"), make_member(full_name="Bob")

    confirm = action(admin_client, "members", "member", "deactivate_selected", [alice, bob])
    assert confirm.status_code == 200
    assert "Deactivate 2 members?" in confirm.content.decode()
    assert 'name="reason"' in confirm.content.decode()

    no_reason = action(
        admin_client, "members", "member", "deactivate_selected", [alice, bob], post="yes"
    )
    assert no_reason.status_code == 200
    assert no_reason.context["form"].errors["reason"]
    assert Member.objects.deactivated().count() == 0

    done = action(
        admin_client,
        "members",
        "member",
        "deactivate_selected",
        [alice, bob],
        post="yes",
        reason="Left the company",
    )
    assert done.status_code == 302
    assert messages_of(done) == ["Deactivated 2 members."]
    alice.refresh_from_db()
    assert alice.status == Member.Status.DEACTIVATED
    assert alice.deactivated_by == admin_user
    assert alice.deactivation_reason == "Left the company"
    events = AuditEvent.objects.filter(action=AuditEvent.Action.DEACTIVATED)
    assert sorted(events.values_list("object_id", flat=True)) == sorted(
        [str(alice.pk), str(bob.pk)]
    )
    assert set(events.values_list("message", flat=True)) == {"Left the company"}

    again = action(
        admin_client, "members", "member", "deactivate_selected", [alice], post="yes", reason="x"
    )
    assert again.status_code == 302
    assert "already deactivated" in messages_of(again)[-1]
    assert events.count() == 2


def test_reactivate_action_calls_the_service(admin_client):
    member = make_member()
    action(
        admin_client, "members", "member", "deactivate_selected", [member], post="yes", reason="r"
    )

    response = action(admin_client, "members", "member", "reactivate_selected", [member])

    assert messages_of(response)[-1] == "Reactivated 1 member."
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REACTIVATED).count() == 1


def test_deactivation_needs_the_deactivate_permission(support_client, staff_manager_client):
    member = make_member()
    changelist = support_client.get(admin_url("members", "member", "changelist"))
    assert "deactivate_selected" not in changelist.content.decode()

    refused = action(
        support_client, "members", "member", "deactivate_selected", [member], post="yes", reason="r"
    )
    assert refused.status_code == 200  # support staff have no actions at all: nothing ran
    member.refresh_from_db()
    assert member.is_active

    allowed = action(
        staff_manager_client,
        "members",
        "member",
        "deactivate_selected",
        [member],
        post="yes",
        reason="Contract ended",
    )
    assert allowed.status_code == 302
    member.refresh_from_db()
    assert member.status == Member.Status.DEACTIVATED


def test_change_form_edits_profile_through_the_service_but_never_status(admin_client):
    member = make_member(title="Engineer")
    url = admin_url("members", "member", "change", member.pk)
    data = change_form_data(admin_client.get(url), title="Staff Engineer", status="deactivated")

    response = admin_client.post(url, data)

    assert response.status_code == 302
    member.refresh_from_db()
    assert member.title == "Staff Engineer"
    assert member.status == Member.Status.ACTIVE
    event = AuditEvent.objects.get(action=AuditEvent.Action.CHANGED)
    assert event.changes == {"title": ["Engineer", "Staff Engineer"]}


def test_add_form_creates_through_the_service(admin_client):
    response = admin_client.post(
        admin_url("members", "member", "add"),
        {
            "full_name": "New Person",
            "email": " new.person@example.com ",
            "employment_type": "full_time",
            "custody_records-TOTAL_FORMS": "0",
            "custody_records-INITIAL_FORMS": "0",
            "entitlements-TOTAL_FORMS": "0",
            "entitlements-INITIAL_FORMS": "0",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    member = Member.objects.get(full_name="New Person")
    assert member.email == "new.person@example.com"
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.CREATED, object_id=str(member.pk)
    ).exists()


def test_change_form_refuses_a_manager_cycle(admin_client):
    boss = make_member(full_name="Boss")
    report = make_member(full_name="Report", manager=boss)
    url = admin_url("members", "member", "change", boss.pk)
    data = change_form_data(admin_client.get(url), manager=report.pk)

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "cannot report to themselves" in str(response.context["adminform"].form.errors)
    boss.refresh_from_db()
    assert boss.manager is None


def test_deleting_a_member_with_assets_shows_why_and_deletes_nothing(admin_client, sample):
    member = sample["member"]
    url = admin_url("members", "member", "delete", member.pk)
    assert admin_client.get(url).status_code == 200

    response = admin_client.post(url, {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == admin_url("members", "member", "change", member.pk)
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) == 1
    assert "cannot be deleted: they still hold 1 asset and 1 live license" in shown[0]
    assert Member.objects.filter(pk=member.pk).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DELETED).exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def test_deleting_a_member_without_history_goes_through_the_service(admin_client):
    member = make_member(full_name="Typo Person")

    response = admin_client.post(
        admin_url("members", "member", "delete", member.pk), {"post": "yes"}
    )

    assert response.status_code == 302
    assert messages_of(response) == ["The member “Typo Person” was deleted successfully."]
    assert not Member.objects.filter(pk=member.pk).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DELETED).count() == 1
    assert LogEntry.objects.filter(action_flag=DELETION, object_id=str(member.pk)).exists()


def test_bulk_delete_deletes_what_it_may_and_says_why_not_for_the_rest(admin_client, sample):
    holder, typo = sample["member"], make_member(full_name="Typo Person")

    confirm = action(admin_client, "members", "member", "delete_selected", [holder, typo])
    assert confirm.status_code == 200
    assert "Are you sure" in confirm.content.decode()

    response = action(
        admin_client, "members", "member", "delete_selected", [holder, typo], post="yes"
    )

    shown = messages_of(response)
    assert any("Hana Holder cannot be deleted" in m for m in shown)
    assert "Deleted 1 member." in shown
    assert list(Member.objects.values_list("full_name", flat=True)) == ["Hana Holder"]
    assert LogEntry.objects.filter(action_flag=DELETION).count() == 1


# --- Assets --------------------------------------------------------------------------------------


def test_asset_custody_is_read_only_in_the_change_form(admin_client, sample):
    response = admin_client.get(admin_url("assets", "asset", "change", sample["asset"].pk))
    form = response.context["adminform"].form
    assert "custodian" not in form.fields
    assert "status" not in form.fields
    assert "mdm_connection" in form.fields


def test_asset_add_creates_through_the_service(admin_client):
    response = admin_client.post(
        admin_url("assets", "asset", "add"),
        {
            "asset_tag": "AT-NEW-1",
            "name": "ThinkPad",
            "category": "laptop",
            "platform": "windows",
            "custody_records-TOTAL_FORMS": "0",
            "custody_records-INITIAL_FORMS": "0",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    asset = Asset.objects.get(asset_tag="AT-NEW-1")
    assert asset.status == Asset.Status.AVAILABLE
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CREATED, object_id=str(asset.pk))


def test_check_in_action_closes_custody_through_the_service(admin_client, sample):
    laptop, spare = sample["asset"], make_asset()

    response = action(admin_client, "assets", "asset", "check_in_selected", [laptop, spare])

    shown = messages_of(response)
    assert "Checked in 1 asset." in shown
    assert any(spare.asset_tag in m for m in shown)
    laptop.refresh_from_db()
    assert laptop.status == Asset.Status.AVAILABLE
    assert laptop.custodian is None
    assert not CustodyRecord.objects.filter(asset=laptop, checked_in_at__isnull=True).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CHECKED_IN).count() == 1


def test_custody_records_are_read_only(admin_client, sample):
    record = sample["custodyrecord"]
    assert (
        admin_client.get(admin_url("assets", "custodyrecord", "delete", record.pk)).status_code
        == 403
    )
    response = admin_client.post(admin_url("assets", "custodyrecord", "change", record.pk), {})
    assert response.status_code == 403


# --- Licenses and entitlements -------------------------------------------------------------------


def test_license_changelist_shows_seats_used(admin_client, sample):
    lic = sample["license"]
    other = make_member()
    revoked = make_entitlement(license=lic, member=other)
    action(admin_client, "licenses", "entitlement", "revoke_selected", [revoked])

    response = admin_client.get(admin_url("licenses", "license", "changelist"))

    assert response.context["cl"].result_list[0].seats_used == 1


def test_license_form_refuses_seats_below_use(admin_client, sample):
    lic = sample["license"]
    url = admin_url("licenses", "license", "change", lic.pk)
    response = admin_client.post(url, change_form_data(admin_client.get(url), seats=0))
    assert response.status_code == 200
    assert "1 seats are in use" in str(response.context["adminform"].form.errors)
    lic.refresh_from_db()
    assert lic.seats == 5


def test_license_change_goes_through_the_service(admin_client, sample):
    lic = sample["license"]
    url = admin_url("licenses", "license", "change", lic.pk)
    response = admin_client.post(url, change_form_data(admin_client.get(url), seats=7))
    assert response.status_code == 302
    event = AuditEvent.objects.get(action=AuditEvent.Action.CHANGED, object_id=str(lic.pk))
    assert event.changes == {"seats": ["5", "7"]}


def test_entitlements_cannot_be_deleted(admin_client, sample):
    entitlement = sample["entitlement"]
    url = admin_url("licenses", "entitlement", "delete", entitlement.pk)
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403

    changelist = admin_client.get(admin_url("licenses", "entitlement", "changelist"))
    assert "delete_selected" not in changelist.content.decode()
    action(admin_client, "licenses", "entitlement", "delete_selected", [entitlement], post="yes")
    assert Entitlement.objects.filter(pk=entitlement.pk).exists()


def test_revoke_action_calls_the_service_once(admin_client, admin_user, sample):
    entitlement = sample["entitlement"]

    first = action(admin_client, "licenses", "entitlement", "revoke_selected", [entitlement])
    second = action(admin_client, "licenses", "entitlement", "revoke_selected", [entitlement])

    assert messages_of(first) == ["Revoked 1 entitlement."]
    assert messages_of(second)[-1] == "Revoked 0 entitlements."
    entitlement.refresh_from_db()
    assert entitlement.revoked_at is not None
    assert entitlement.revoked_by == admin_user
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVOKED).count() == 1


# --- Audit log and portal settings ---------------------------------------------------------------


def test_audit_log_is_read_only(admin_client, sample):
    event = sample["auditevent"]
    assert admin_client.get(admin_url("assetsonar", "auditevent", "add")).status_code == 403
    change = admin_url("assetsonar", "auditevent", "change", event.pk)
    assert admin_client.post(change, {"message": "edited"}).status_code == 403
    delete = admin_url("assetsonar", "auditevent", "delete", event.pk)
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    changelist = admin_client.get(admin_url("assetsonar", "auditevent", "changelist"))
    assert "delete_selected" not in changelist.content.decode()
    event.refresh_from_db()
    assert event.message == "Seeded"


def test_portal_settings_is_a_singleton_and_changes_are_audited(admin_client, admin_user):
    changelist = admin_client.get(admin_url("assetsonar", "portalsettings", "changelist"))
    assert changelist.status_code == 302
    change = changelist.url
    assert change == admin_url("assetsonar", "portalsettings", "change", 1)

    kept = {"company_time_zone": "UTC", "deactivate_on_last_day_default": "on"}
    response = admin_client.post(change, {"mdm_commands_enabled": "on", "_save": "Save", **kept})

    assert response.status_code == 302
    assert PortalSettings.load().mdm_commands_enabled is True
    event = AuditEvent.objects.get(action=AuditEvent.Action.SETTINGS_CHANGED)
    assert event.actor == admin_user
    assert event.changes == {"mdm_commands_enabled": ["False", "True"]}
    delete = admin_url("assetsonar", "portalsettings", "delete", 1)
    assert admin_client.get(delete).status_code == 403

    admin_client.post(change, {"mdm_commands_enabled": "on", "_save": "Save", **kept})  # same
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SETTINGS_CHANGED).count() == 1


def test_portal_settings_refuse_an_unknown_company_time_zone(admin_client):
    change = admin_url("assetsonar", "portalsettings", "change", PortalSettings.load().pk)

    response = admin_client.post(change, {"company_time_zone": "Mars/Olympus", "_save": "Save"})

    assert response.status_code == 200
    assert "“Mars/Olympus” is not a time zone name" in response.content.decode()
    assert PortalSettings.load().company_time_zone == "UTC"

    admin_client.post(change, {"company_time_zone": "Europe/Berlin", "_save": "Save"})
    assert PortalSettings.load().company_time_zone == "Europe/Berlin"
    assert AuditEvent.objects.get(action=AuditEvent.Action.SETTINGS_CHANGED).changes == {
        "company_time_zone": ["UTC", "Europe/Berlin"],
        "deactivate_on_last_day_default": ["True", "False"],
    }


# --- Query budgets -------------------------------------------------------------------------------


def _grow(count: int) -> None:
    lic = License.objects.first() or make_license(seats=1000)
    for _ in range(count):
        member = make_member()
        make_asset(custodian=member)
        make_entitlement(license=lic, member=member)
        make_license()
        audit_record(action=AuditEvent.Action.CREATED, obj=member)


@pytest.mark.parametrize(
    ("app", "model"),
    [
        ("members", "member"),
        ("assets", "asset"),
        ("assets", "custodyrecord"),
        ("licenses", "license"),
        ("licenses", "entitlement"),
        ("assetsonar", "auditevent"),
    ],
)
def test_changelist_query_count_does_not_grow_with_the_data(admin_client, app, model):
    url = admin_url(app, model, "changelist")

    def queries() -> int:
        admin_client.get(url)  # the first request may warm caches (content types, session)
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured)

    _grow(2)
    small = queries()
    _grow(20)
    assert queries() == small
