"""SCIM filters as database conditions: every operator on the attributes the README lists."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from conftest import make_member
from members.models import Member
from members.services import member_deactivate
from provisioning.filters import filter_to_q
from provisioning.selectors import scim_users

pytestmark = pytest.mark.django_db

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def names(text: str) -> list[str]:
    return sorted(scim_users().filter(filter_to_q(text)).values_list("full_name", flat=True))


@pytest.fixture
def people():
    boss = make_member(full_name="Avery Boss", email="avery@example.com", family_name="Boss")
    jordan = make_member(
        full_name="Jordan Rivera",
        email="jordan.rivera@example.com",
        given_name="Jordan",
        family_name="Rivera",
        external_id="okta-1",
        scim_user_name="jrivera",
        title="Engineer",
        department="Platform",
        employee_id="E-1",
        manager=boss,
        location="Lisbon",
    )
    sam = make_member(
        full_name="Sam Lee",
        email="sam@contoso.com",
        given_name="Sam",
        family_name="Lee",
        title="",
        department="Finance",
        employee_id="E-2",
    )
    member_deactivate(member=sam, actor=None, reason="Left")
    hidden = make_member(full_name="Hidden Person", email="hidden@example.com")
    Member.objects.filter(pk=hidden.pk).update(scim_hidden_at=timezone.now())
    return boss, jordan, sam


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "JRIVERA"', ["Jordan Rivera"]),
        # A member made in the portal has its email as userName.
        ('userName eq "avery@example.com"', ["Avery Boss"]),
        ('userName eq "jordan.rivera@example.com"', []),
        ('userName sw "jr"', ["Jordan Rivera"]),
        ('userName co "contoso"', ["Sam Lee"]),
        ('userName ew "@EXAMPLE.COM"', ["Avery Boss"]),
        ('userName ne "jrivera"', ["Avery Boss", "Sam Lee"]),
        ('externalId eq "okta-1"', ["Jordan Rivera"]),
        ('externalId eq "OKTA-1"', []),  # caseExact
        ("externalId pr", ["Jordan Rivera"]),
        ('emails.value eq "Sam@Contoso.com"', ["Sam Lee"]),
        ('emails eq "sam@contoso.com"', ["Sam Lee"]),
        ('emails[type eq "work" and value co "rivera"]', ["Jordan Rivera"]),
        ('emails[type eq "home"]', []),
        ('name.familyName eq "rivera"', ["Jordan Rivera"]),
        ('name.familyName gt "C"', ["Jordan Rivera", "Sam Lee"]),
        ('name.familyName lt "C"', ["Avery Boss"]),
        ('name.givenName sw "Sa"', ["Sam Lee"]),
        ('name.formatted co "boss"', ["Avery Boss"]),
        ("active eq true", ["Avery Boss", "Jordan Rivera"]),
        ("active eq false", ["Sam Lee"]),
        ("not (active eq true)", ["Sam Lee"]),
        ("title pr", ["Avery Boss", "Jordan Rivera"]),
        (
            'title eq "engineer" or name.familyName eq "lee"',
            ["Avery Boss", "Jordan Rivera", "Sam Lee"],
        ),
        ('title eq "engineer" and active eq true and department eq "platform"', ["Jordan Rivera"]),
        (f'{ENTERPRISE}:employeeNumber eq "E-2"', ["Sam Lee"]),
        (f'{ENTERPRISE}:department eq "finance"', ["Sam Lee"]),
        ('addresses.locality eq "lisbon"', ["Jordan Rivera"]),
        # Entra's form: scim2-models folds the sub-attribute comparison into the value filter.
        ('addresses[type eq "work"].locality eq "lisbon"', ["Jordan Rivera"]),
        ('emails[type eq "work"].value ew "contoso.com"', ["Sam Lee"]),
    ],
)
def test_filters(people, text, expected):
    assert names(text) == expected


def test_filter_on_manager_and_id(people):
    boss, jordan, _sam = people
    assert names(f'{ENTERPRISE}:manager.value eq "{boss.pk}"') == ["Jordan Rivera"]
    assert names(f'id eq "{jordan.pk}"') == ["Jordan Rivera"]
    assert names('id eq "not-a-number"') == []


def test_filter_on_last_modified(people, settings):
    _boss, jordan, _sam = people
    later = timezone.now() + timedelta(seconds=1)
    Member.objects.filter(pk=jordan.pk).update(updated_at=later + timedelta(hours=1))
    assert names(f'meta.lastModified gt "{later.isoformat()}"') == ["Jordan Rivera"]
    assert names(f'meta.lastModified le "{later.isoformat()}"') == ["Avery Boss", "Sam Lee"]
    assert "Jordan Rivera" not in names(f'meta.lastModified lt "{later.isoformat()}"')
    # Without a zone the moment is read as UTC, the zone meta.lastModified is served in, not
    # as the portal's TIME_ZONE (read as Berlin time, an hour earlier: everyone).
    settings.TIME_ZONE = "Europe/Berlin"
    half_way = later + timedelta(minutes=30)
    naive = half_way.astimezone(UTC).replace(tzinfo=None).isoformat()
    assert names(f'meta.lastModified gt "{naive}"') == ["Jordan Rivera"]
