"""What the deactivate dialogs say will happen (issue 7, items 1 and 7): the enabled automations
of the deactivation trigger that match the member, matched as the engine matches them, and what
each does in the builder's order; the server's message for a missing reason in the dialog."""

from __future__ import annotations

import pytest
from django.urls import reverse

from automations.selectors import automations_planned
from automations.tests.builder_factories import make_automation
from automations.triggers import MEMBER_REACTIVATED
from conftest import make_asset, make_entitlement, make_license, make_member
from members.models import Member

pytestmark = pytest.mark.django_db

OLD_SENTENCE = "Their assets and licenses stay with them until they are checked in or revoked"


@pytest.fixture
def automations():
    """One automation for Engineering with all three actions, one for members holding more than
    one device (a count condition, from the member's snapshot), one disabled, one on the other
    trigger."""
    return {
        "engineering": make_automation(
            name="Offboard engineers",
            conditions=[("department", "is", "Engineering")],
            mdm={},
            webhook={"url": "https://hr.example.com/hooks/offboard"},
        ),
        "holders": make_automation(
            name="Lock multi-device holders",
            conditions=[("assets_in_custody", "greater_than", 1)],
            revoke=False,
            mdm={},
        ),
        "disabled": make_automation(name="Switched off", enabled=False, conditions=[]),
        "reactivated": make_automation(
            name="Welcome back", trigger_event=MEMBER_REACTIVATED, conditions=[]
        ),
    }


def test_planned_automations_are_matched_like_the_engine_and_say_what_they_do(automations):
    engineer = make_member(department="Engineering")
    holder = make_member(department="Sales")
    make_asset(custodian=holder)
    make_asset(custodian=holder)
    nobody = make_member(department="Sales")

    planned = automations_planned(member_ids=[engineer.pk, holder.pk, nobody.pk])

    assert [run.automation.name for run in planned] == [
        "Lock multi-device holders",
        "Offboard engineers",
    ]
    holders, engineers = planned
    assert [m.pk for m in engineers.members] == [engineer.pk]
    assert [m.pk for m in holders.members] == [holder.pk]
    # The builder's order: revoke, lock, webhook.
    assert engineers.actions == [
        "revoke user-based licenses",
        "lock their devices through MDM",
        "call https://hr.example.com/hooks/offboard",
    ]
    assert holders.actions == ["lock their devices through MDM"]
    assert automations_planned(member_ids=[nobody.pk]) == []


@pytest.mark.parametrize("size", [2, 25])
def test_planned_automations_cost_a_fixed_number_of_queries(django_assert_max_num_queries, size):
    for n in range(size // 5 + 1):
        make_automation(conditions=[("live_entitlements", "greater_than", n)], mdm={})
    license = make_license(seats=1000)
    members = [make_member(manager=make_member()) for _ in range(size)]
    for member in members:
        make_asset(custodian=member)
        make_entitlement(license=license, member=member)

    with django_assert_max_num_queries(6):
        planned = automations_planned(member_ids=[m.pk for m in members])
        [run.members[0].full_name for run in planned]

    assert planned


def test_no_enabled_automation_costs_one_query(django_assert_num_queries):
    make_automation(enabled=False)
    member = make_member()

    with django_assert_num_queries(1):
        assert automations_planned(member_ids=[member.pk]) == []


def test_the_deactivate_dialog_lists_the_automations_that_will_run(manager_client, automations):
    member = make_member(department="Engineering")

    page = manager_client.get(member.get_absolute_url()).content.decode()
    # The dialog loads it when it opens (the same fragment the no-JavaScript page renders).
    dialog = page[page.index('id="deactivate-dialog"') :]
    dialog = dialog[: dialog.index("</dialog>")]
    assert f"deactivation-preview/?member={member.pk}" in dialog
    loaded = manager_client.get(
        reverse("automations:deactivation_preview"), {"member": member.pk}, HTTP_HX_REQUEST="true"
    ).content.decode()
    no_js = manager_client.get(reverse("members:deactivate", args=[member.pk])).content.decode()

    for html in (loaded, no_js):
        assert OLD_SENTENCE not in html
        assert "Offboard engineers" in html
        assert "Revoke user-based licenses" in html
        assert "Lock their devices through MDM" in html
        assert "Call https://hr.example.com/hooks/offboard" in html
        assert "Switched off" not in html and "Welcome back" not in html
        assert "Lock multi-device holders" not in html


def test_the_deactivate_dialog_says_when_nothing_will_run(manager_client, automations):
    member = make_member(department="Sales")

    html = manager_client.get(
        reverse("automations:deactivation_preview"), {"member": member.pk}
    ).content.decode()

    assert "No enabled automation runs for this member" in html


def test_the_bulk_dialog_preview_says_for_how_many_of_the_selection(manager_client, automations):
    engineer = make_member(department="Engineering")
    other = make_member(department="Sales")

    response = manager_client.get(
        reverse("automations:deactivation_preview"),
        {"ids": [engineer.pk, other.pk]},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert "Offboard engineers" in text and "(for 1 of 2)" in text
    assert "Lock multi-device holders" not in text
    assert "In total" in text and "0 license seats" in text  # the engineer holds none


def test_the_bulk_preview_needs_the_deactivate_permission(viewer_client, automations):
    response = viewer_client.get(reverse("automations:deactivation_preview"), {"ids": [1]})

    assert response.status_code == 403


def test_the_no_javascript_bulk_page_lists_the_automations_too(manager_client, automations):
    engineer = make_member(department="Engineering")

    response = manager_client.post(reverse("members:bulk_deactivate"), {"ids": [engineer.pk]})

    assert response.status_code == 200
    assert "Offboard engineers" in response.content.decode()


def test_a_missing_reason_is_refused_by_the_server_in_the_dialog(manager_client):
    member = make_member()

    response = manager_client.post(
        reverse("members:deactivate", args=[member.pk]), {"reason": "   "}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert text.lstrip().startswith("<form")  # the dialog's form, swapped in place
    assert "novalidate" in text  # the browser's bubble does not pre-empt the server's message
    assert "Say why the member is deactivated (for the audit trail)." in text
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE


def test_the_dialog_forms_leave_validation_to_the_server(manager_client):
    member = make_member()

    detail = manager_client.get(member.get_absolute_url()).content.decode()
    listing = manager_client.get(reverse("members:list")).content.decode()

    form = detail[detail.index('action="' + reverse("members:deactivate", args=[member.pk])) :]
    assert "novalidate" in form[: form.index(">")]
    bulk = listing[listing.index('<form id="bulk-form"') :]
    assert "novalidate" in bulk[: bulk.index(">")]


def test_a_missing_bulk_reason_is_refused_in_the_dialog(manager_client):
    members = [make_member(), make_member()]

    response = manager_client.post(
        reverse("members:bulk_deactivate"),
        {"ids": [m.pk for m in members], "reason": ""},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert text.lstrip().startswith('<form id="bulk-form"')
    assert "Say why the member is deactivated (for the audit trail)." in text
    assert not Member.objects.filter(status=Member.Status.DEACTIVATED).exists()


def test_the_admin_bulk_confirmation_says_what_will_run(client, automations):
    from conftest import make_user

    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    engineer, other = make_member(department="Engineering"), make_member(department="Sales")

    response = client.post(
        reverse("admin:members_member_changelist"),
        {"action": "deactivate_selected", "_selected_action": [engineer.pk, other.pk], "index": 0},
    )

    text = response.content.decode()
    assert "Deactivate 2 members?" in text
    assert "stay with them until they are checked in and revoked" not in text
    assert "Offboard engineers" in text and "(for 1 of 2)" in text
