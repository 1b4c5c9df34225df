"""members.views over HTTP: sign-in, permissions, htmx fragments, PRG, and query budgets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from assets.services import asset_check_in
from assetsonar.models import AuditEvent
from automations.tests.builder_factories import make_automation
from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.services import license_unentitle
from members import services
from members.models import Member

HTMX = {"HX-Request": "true"}

# Session, user, user permissions, group permissions, the navigation's approvals count (issue 9),
# then the page's own queries.
LIST_QUERY_BUDGET = 9  # + count (capped), page, departments, locations (counts are columns)
DETAIL_QUERY_BUDGET = 15  # + member, assets, entitlements, custody, revoked, audit trail,
# the Automated actions panel (the member's execution ids, their action list and the "still
# running?" check), the Offboarding timeline's delayed actions (1, issue 10); the deactivate
# dialog's preview loads when it opens (its own request, automations/tests/test_preview.py)
# The Offboarding timeline of a member with a last working day (automations/
# selectors_offboarding.py): the automations with their conditions and actions (3), the
# member's snapshot (3), the fired triggers (1), and for a deactivated member the executions of
# their deactivation (1).
TIMELINE_QUERIES = 8
# The panel reads the logs of the member's executions only when there are some.
PANEL_LOGS_QUERY = 1


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _form_data(**overrides) -> dict:
    data = {
        "full_name": "Katherine Johnson",
        "email": "katherine@example.com",
        "employee_id": "K1",
        "department": "Research",
        "location": "Hampton",
        "title": "Mathematician",
        "manager": "",
        "employment_type": Member.EmploymentType.FULL_TIME,
    }
    data.update(overrides)
    return data


# --- Sign-in and permissions ----------------------------------------------------------------------


def _urls(member: Member) -> list[tuple[str, str]]:
    return [
        ("get", reverse("members:list")),
        ("get", reverse("members:detail", args=[member.pk])),
        ("get", reverse("members:create")),
        ("get", reverse("members:edit", args=[member.pk])),
        ("post", reverse("members:deactivate", args=[member.pk])),
        ("post", reverse("members:reactivate", args=[member.pk])),
        ("post", reverse("members:delete", args=[member.pk])),
        ("post", reverse("members:bulk_deactivate")),
    ]


@pytest.mark.django_db
def test_every_members_page_sends_anonymous_visitors_to_sign_in(client):
    member = make_member()

    for method, url in _urls(member):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url

    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "support_staff"])
def test_read_only_roles_see_members_without_action_buttons(client, request, role):
    client.force_login(request.getfixturevalue(role))
    member = make_member(full_name="Read Only")

    listing = client.get(reverse("members:list"))
    detail = client.get(member.get_absolute_url())

    assert listing.status_code == detail.status_code == 200
    assert b"Read Only" in listing.content
    for page in (listing, detail):
        html = page.content.decode()
        assert reverse("members:create") not in html
        assert reverse("members:bulk_deactivate") not in html
        assert 'name="ids"' not in html
        assert reverse("members:deactivate", args=[member.pk]) not in html
        assert reverse("members:edit", args=[member.pk]) not in html
        assert reverse("members:delete", args=[member.pk]) not in html


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "support_staff"])
def test_read_only_roles_are_refused_every_change_even_by_a_crafted_request(client, request, role):
    client.force_login(request.getfixturevalue(role))
    member = make_member()
    deactivated = make_member()
    services.member_deactivate(member=deactivated, actor=None, reason="Left")
    attempts = [
        ("get", reverse("members:create"), {}),
        ("post", reverse("members:create"), _form_data()),
        ("get", reverse("members:edit", args=[member.pk]), {}),
        ("post", reverse("members:edit", args=[member.pk]), _form_data(full_name="Hacked")),
        ("post", reverse("members:deactivate", args=[member.pk]), {"reason": "x"}),
        ("post", reverse("members:reactivate", args=[deactivated.pk]), {}),
        ("post", reverse("members:delete", args=[member.pk]), {}),
        ("post", reverse("members:bulk_deactivate"), {"ids": [member.pk], "reason": "x"}),
    ]

    for method, url, data in attempts:
        assert getattr(client, method)(url, data).status_code == 403, url

    member.refresh_from_db()
    deactivated.refresh_from_db()
    assert member.full_name != "Hacked"
    assert member.status == Member.Status.ACTIVE
    assert deactivated.status == Member.Status.DEACTIVATED
    assert Member.objects.count() == 2
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PERMISSION_DENIED).count() == 8


@pytest.mark.django_db
def test_it_managers_see_every_action_button(manager_client):
    member = make_member()

    html = manager_client.get(member.get_absolute_url()).content.decode()

    for name in ("edit", "deactivate", "delete"):
        assert reverse(f"members:{name}", args=[member.pk]) in html
    assert 'id="deactivate-dialog"' in html
    assert 'id="automated-actions"' in html


@pytest.mark.django_db
def test_pages_refuse_methods_they_do_not_serve(manager_client):
    member = make_member()

    assert manager_client.post(reverse("members:list")).status_code == 405
    assert manager_client.get(reverse("members:bulk_deactivate")).status_code == 405
    assert manager_client.delete(member.get_absolute_url()).status_code == 405


# --- List -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_list_searches_filters_and_shows_counts(manager_client):
    ada = make_member(full_name="Ada Lovelace", department="Engineering")
    make_member(full_name="Alan Turing", department="Research")
    make_asset(custodian=ada)
    make_entitlement(license=make_license(), member=ada)

    response = manager_client.get(reverse("members:list"), {"q": "ada", "status": "active"})

    page = response.context["page_obj"]
    assert [m.full_name for m in page] == ["Ada Lovelace"]
    assert (page[0].assets_count, page[0].live_entitlements_count) == (1, 1)
    assert b"Alan Turing" not in response.content
    assert b"<html" in response.content


@pytest.mark.django_db
def test_the_list_pages_by_fifty(manager_client):
    for n in range(51):
        make_member(full_name=f"Person {n:02d}")

    first = manager_client.get(reverse("members:list"))
    second = manager_client.get(reverse("members:list"), {"page": 2})

    assert len(first.context["page_obj"]) == 50
    assert [m.full_name for m in second.context["page_obj"]] == ["Person 50"]
    assert b"Page 1 of 2" in first.content


@pytest.mark.django_db
def test_an_htmx_request_gets_only_the_results_fragment(manager_client):
    make_member(full_name="Ada Lovelace")

    response = manager_client.get(reverse("members:list"), {"q": "ada"}, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="member-results"')
    assert "Ada Lovelace" in html
    assert "<html" not in html
    assert 'id="member-filters"' not in html
    assert "HX-Request" in response["Vary"]


@pytest.mark.django_db
def test_an_htmx_history_restore_gets_the_whole_page(manager_client):
    response = manager_client.get(
        reverse("members:list"), headers={**HTMX, "HX-History-Restore-Request": "true"}
    )

    assert b"<html" in response.content


@pytest.mark.django_db
def test_sort_links_keep_the_filters_and_flip_the_direction(manager_client):
    make_member()

    response = manager_client.get(reverse("members:list"), {"q": "m", "sort": "department"})

    html = response.content.decode()
    assert response.context["sort"] == "department"
    assert "?q=m&amp;sort=-department" in html
    assert 'aria-sort="ascending"' in html


# --- Detail ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_detail_page_shows_profile_holdings_history_and_audit_trail(manager_client, it_manager):
    boss = make_member(full_name="The Boss")
    member = make_member(full_name="Ada Lovelace", manager=boss)
    make_member(manager=member)
    make_asset(custodian=member, asset_tag="AT-HELD")
    returned = make_asset(custodian=member, asset_tag="AT-BACK")
    asset_check_in(asset=returned, actor=it_manager)
    make_entitlement(license=make_license(name="Figma"), member=member)
    old = make_entitlement(license=make_license(name="Sketch"), member=member)
    license_unentitle(entitlement=old, actor=it_manager, reason="Switched to Figma")
    services.member_update(member=member, actor=it_manager, title="Countess")
    services.member_deactivate(member=member, actor=it_manager, reason="Moved abroad")

    response = manager_client.get(member.get_absolute_url())

    html = response.content.decode()
    assert response.context["member"].reports_count == 1
    assert boss.get_absolute_url() in html
    assert "Moved abroad" in html
    assert [a.asset_tag for a in response.context["assets"]] == ["AT-HELD"]
    assert response.context["assets"][0].since is not None
    assert [e.license.name for e in response.context["entitlements"]] == ["Figma"]
    assert {r.asset.asset_tag for r in response.context["custody_history"]} == {
        "AT-HELD",
        "AT-BACK",
    }
    assert "Switched to Figma" in html
    assert [e.action for e in response.context["audit_trail"]] == [
        AuditEvent.Action.DEACTIVATED,
        AuditEvent.Action.CHANGED,
    ]
    assert reverse("members:reactivate", args=[member.pk]) in html
    assert 'id="deactivate-dialog"' not in html


@pytest.mark.django_db
def test_an_unknown_member_is_a_404(manager_client):
    assert manager_client.get(reverse("members:detail", args=[424242])).status_code == 404


# --- Create and edit ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_a_member_redirects_to_them_with_a_message(manager_client, it_manager):
    boss = make_member(employee_id="B1")

    response = manager_client.post(reverse("members:create"), _form_data(manager="b1"))

    member = Member.objects.get(email="katherine@example.com")
    assert response.status_code == 302
    assert response["Location"] == member.get_absolute_url()
    assert member.manager == boss
    assert _messages(response) == ["Katherine Johnson was added."]
    assert AuditEvent.objects.get(action=AuditEvent.Action.CREATED).actor == it_manager


@pytest.mark.django_db
def test_an_invalid_member_form_shows_field_errors_and_saves_nothing(manager_client):
    make_member(email="katherine@example.com")

    response = manager_client.post(
        reverse("members:create"), _form_data(email="KATHERINE@example.com", manager="ghost")
    )

    form = response.context["form"]
    assert response.status_code == 200
    assert form.errors["email"] == ["Another member already has this email address."]
    assert "manager" in form.errors
    assert Member.objects.count() == 1


@pytest.mark.django_db
def test_htmx_form_posts_get_the_form_fragment_on_errors_and_a_redirect_header_on_success(
    manager_client,
):
    invalid = manager_client.post(reverse("members:create"), _form_data(email="nope"), headers=HTMX)
    valid = manager_client.post(reverse("members:create"), _form_data(), headers=HTMX)

    assert invalid.status_code == 200
    assert invalid.content.decode().lstrip().startswith('<form id="member-form"')
    assert b"Enter a valid email address." in invalid.content
    member = Member.objects.get()
    assert valid.status_code == 200
    assert valid["HX-Redirect"] == member.get_absolute_url()


@pytest.mark.django_db
def test_editing_a_member_saves_and_audits_the_change(manager_client):
    member = make_member(email="old@example.com", title="Engineer")

    response = manager_client.post(
        reverse("members:edit", args=[member.pk]),
        _form_data(email="new@example.com", title="Lead", employee_id=member.employee_id),
    )

    member.refresh_from_db()
    assert response.status_code == 302
    assert (member.email, member.title) == ("new@example.com", "Lead")
    event = AuditEvent.objects.get(action=AuditEvent.Action.CHANGED)
    assert event.changes["title"] == ["Engineer", "Lead"]
    assert event.changes["email"] == ["old@example.com", "new@example.com"]


@pytest.mark.django_db
def test_editing_refuses_a_manager_cycle_and_saves_nothing(manager_client):
    top = make_member(full_name="Top")
    below = make_member(manager=top, email="below@example.com")

    response = manager_client.post(
        reverse("members:edit", args=[top.pk]),
        _form_data(full_name="Renamed", email=top.email, manager="below@example.com"),
    )

    top.refresh_from_db()
    assert response.status_code == 200
    assert "manager" in response.context["form"].errors
    assert (top.full_name, top.manager) == ("Top", None)
    assert below.manager == top


@pytest.mark.django_db
def test_the_form_page_offers_existing_departments_and_locations(manager_client):
    make_member(department="Finance", location="Oslo")

    html = manager_client.get(reverse("members:create")).content.decode()

    assert 'list="department-options"' in html
    assert '<option value="Finance">' in html
    assert '<option value="Oslo">' in html


# --- Deactivate, reactivate, delete ---------------------------------------------------------------


@pytest.mark.django_db
def test_deactivating_records_the_reason_and_redirects_with_a_message(manager_client, it_manager):
    member = make_member(full_name="Leaving Soon")

    response = manager_client.post(
        reverse("members:deactivate", args=[member.pk]), {"reason": "Last day today"}
    )

    member.refresh_from_db()
    assert response.status_code == 302
    assert response["Location"] == member.get_absolute_url()
    assert member.status == Member.Status.DEACTIVATED
    assert member.deactivation_reason == "Last day today"
    assert member.deactivated_by == it_manager
    assert _messages(response) == ["Leaving Soon was deactivated."]


@pytest.mark.django_db
def test_deactivating_over_htmx_without_a_reason_redraws_the_dialog_form(manager_client):
    member = make_member()

    response = manager_client.post(
        reverse("members:deactivate", args=[member.pk]), {"reason": "  "}, headers=HTMX
    )

    html = response.content.decode()
    member.refresh_from_db()
    assert response.status_code == 200
    assert html.lstrip().startswith("<form")
    assert "Say why the member is deactivated" in html
    assert member.status == Member.Status.ACTIVE


@pytest.mark.django_db
def test_deactivating_over_htmx_answers_with_a_redirect_header(manager_client):
    member = make_member()

    response = manager_client.post(
        reverse("members:deactivate", args=[member.pk]), {"reason": "Left"}, headers=HTMX
    )

    assert response["HX-Redirect"] == member.get_absolute_url()
    member.refresh_from_db()
    assert member.status == Member.Status.DEACTIVATED


@pytest.mark.django_db
def test_the_deactivation_page_works_without_javascript(manager_client):
    member = make_member(full_name="No Script")

    response = manager_client.get(reverse("members:deactivate", args=[member.pk]))

    assert response.status_code == 200
    assert b"Deactivate No Script" in response.content
    assert b'name="reason"' in response.content


@pytest.mark.django_db
def test_reactivating_brings_a_member_back(manager_client, it_manager):
    member = make_member(full_name="Back Again")
    services.member_deactivate(member=member, actor=it_manager, reason="Sabbatical")

    response = manager_client.post(reverse("members:reactivate", args=[member.pk]))

    member.refresh_from_db()
    assert response.status_code == 302
    assert member.status == Member.Status.ACTIVE
    assert _messages(response) == ["Back Again was reactivated."]


@pytest.mark.django_db
def test_deleting_a_member_who_holds_an_asset_shows_why_not(manager_client):
    member = make_member(full_name="Still Holding")
    make_asset(custodian=member)

    over_htmx = manager_client.post(reverse("members:delete", args=[member.pk]), headers=HTMX)
    plain = manager_client.post(reverse("members:delete", args=[member.pk]))

    assert b"Still Holding cannot be deleted" in over_htmx.content
    assert b"1 asset" in over_htmx.content
    assert plain.status_code == 302
    assert plain["Location"] == member.get_absolute_url()
    assert "Still Holding cannot be deleted" in _messages(plain)[0]
    assert Member.objects.filter(pk=member.pk).exists()


@pytest.mark.django_db
def test_deleting_a_member_added_by_mistake_returns_to_the_list(manager_client):
    member = make_member(full_name="Typo Person")

    response = manager_client.post(reverse("members:delete", args=[member.pk]))

    assert response.status_code == 302
    assert response["Location"] == reverse("members:list")
    assert not Member.objects.filter(pk=member.pk).exists()
    assert _messages(response) == ["Typo Person was deleted."]


# --- Bulk deactivate ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bulk_deactivation_reports_how_many_changed_and_returns_to_the_filtered_list(
    manager_client, it_manager
):
    first, second, already = make_member(), make_member(), make_member()
    services.member_deactivate(member=already, actor=it_manager, reason="Earlier")
    back = reverse("members:list") + "?department=Engineering&page=1"

    response = manager_client.post(
        reverse("members:bulk_deactivate"),
        {"ids": [first.pk, second.pk, already.pk], "reason": "Office closed", "next": back},
    )

    assert response.status_code == 302
    assert response["Location"] == back
    assert _messages(response) == ["2 members deactivated. 1 was already deactivated."]
    assert Member.objects.deactivated().count() == 3


@pytest.mark.django_db
def test_bulk_deactivation_never_redirects_off_site(manager_client):
    member = make_member()

    response = manager_client.post(
        reverse("members:bulk_deactivate"),
        {"ids": [member.pk], "reason": "Left", "next": "https://evil.example/"},
    )

    assert response["Location"] == reverse("members:list")


@pytest.mark.django_db
def test_bulk_deactivation_without_a_reason_asks_for_one_and_keeps_the_selection(manager_client):
    chosen = make_member(full_name="Chosen One")

    response = manager_client.post(reverse("members:bulk_deactivate"), {"ids": [chosen.pk]})

    html = response.content.decode()
    assert response.status_code == 200
    assert "Chosen One" in html
    assert f'name="ids" value="{chosen.pk}"' in html
    assert "Say why the member is deactivated" in html
    assert Member.objects.deactivated().count() == 0


@pytest.mark.django_db
def test_bulk_deactivation_over_htmx_answers_with_a_redirect_header(manager_client):
    member = make_member()

    response = manager_client.post(
        reverse("members:bulk_deactivate"), {"ids": [member.pk], "reason": "Left"}, headers=HTMX
    )

    assert response["HX-Redirect"] == reverse("members:list")


# --- Query budgets --------------------------------------------------------------------------------


def _populate(count: int) -> list[Member]:
    members = [
        make_member(department=f"Dept {n % 4}", location=f"City {n % 3}") for n in range(count)
    ]
    for member in members:
        make_asset(custodian=member)
        make_entitlement(license=make_license(), member=member)
    return members


@pytest.mark.django_db
@pytest.mark.parametrize("size", [5, 60])
@pytest.mark.parametrize("htmx", [False, True])
def test_the_list_stays_within_its_query_budget_whatever_the_data_size(
    manager_client, django_assert_max_num_queries, size, htmx
):
    _populate(size)
    headers = HTMX if htmx else {}

    with django_assert_max_num_queries(LIST_QUERY_BUDGET):
        response = manager_client.get(
            reverse("members:list"), {"department": "Dept 1", "holding": "1"}, headers=headers
        )
    with django_assert_max_num_queries(LIST_QUERY_BUDGET):
        manager_client.get(reverse("members:list"), headers=headers)
    for term in ("ember", "me"):  # a substring, and a short term searched as a prefix
        with django_assert_max_num_queries(LIST_QUERY_BUDGET):
            searched = manager_client.get(reverse("members:list"), {"q": term}, headers=headers)
        assert len(searched.context["page_obj"]) == min(size, 50)

    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("size", [5, 60])
def test_the_detail_page_stays_within_its_query_budget_whatever_the_data_size(
    manager_client, django_assert_max_num_queries, it_manager, size
):
    member = make_member()
    license = make_license(seats=1000)
    for _ in range(size // 20 + 1):  # not worked out until the deactivate dialog opens
        make_automation(mdm={}, webhook={})
    for n in range(size):
        make_member(manager=member)
        asset = make_asset(custodian=member)
        if n % 2:
            asset_check_in(asset=asset, actor=it_manager)
        entitlement = make_entitlement(license=make_license(), member=member)
        if n % 2:
            license_unentitle(entitlement=entitlement, actor=it_manager)
        make_entitlement(license=license, member=member, asset=make_asset())
        services.member_update(member=member, actor=it_manager, title=f"Title {n}")

    with django_assert_max_num_queries(DETAIL_QUERY_BUDGET):
        response = manager_client.get(member.get_absolute_url())

    assert response.status_code == 200
    assert len(response.context["custody_history"]) == min(size, 50)

    # With a last working day: the Offboarding timeline, whatever the number of automations.
    for n in range(size // 20 + 1):
        last_day = make_automation(trigger_event="member.last_working_day", conditions=[])
        last_day.trigger_options = {"offset_days": -n, "at": "09:00"}
        last_day.save()
    Member.objects.filter(pk=member.pk).update(
        last_working_day=timezone.localdate() + timedelta(days=3)
    )
    with django_assert_max_num_queries(DETAIL_QUERY_BUDGET + TIMELINE_QUERIES):
        response = manager_client.get(member.get_absolute_url())
    assert response.content.decode().count('data-kind="last_day"') == size // 20 + 1
