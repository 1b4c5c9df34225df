"""One date format, the user's (issue 7, item 26): shown dates are written in the numeric format
the browser's own date inputs use for its locale, read from Accept-Language; date inputs keep
their ISO value, which the browser shows in that same format."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.urls import reverse

from assetsonar.locale_dates import date_pattern
from conftest import make_license

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("lang", "pattern"),
    [
        ("en-us", "m/d/Y"),
        ("en-gb", "d/m/Y"),
        ("de", "d.m.Y"),
        ("fr", "d/m/Y"),
        ("nl", "d-m-Y"),  # Django's "j-n-Y", with two digits as the date input shows them
        ("sv", "Y-m-d"),
        ("ja", "Y/m/d"),
    ],
)
def test_each_locale_has_the_numeric_pattern_of_its_date_input(lang, pattern):
    assert date_pattern(lang) == pattern


@pytest.mark.parametrize(
    ("accept_language", "shown"),
    [
        ("en-US,en;q=0.9", "02/01/2027"),
        ("en-GB,en;q=0.9", "01/02/2027"),
        ("de-DE,de;q=0.9,en;q=0.5", "01.02.2027"),
        ("", "02/01/2027"),  # no header: the portal's LANGUAGE_CODE (en-us)
        ("tlh, *", "02/01/2027"),  # no Django formats for it: the same
    ],
)
def test_pages_show_dates_in_the_browsers_format(manager_client, accept_language, shown):
    lic = make_license(name="Figma", expires_on=date(2027, 2, 1))

    page = manager_client.get(lic.get_absolute_url(), HTTP_ACCEPT_LANGUAGE=accept_language)
    edit = manager_client.get(
        reverse("licenses:edit", args=[lic.pk]), HTTP_ACCEPT_LANGUAGE=accept_language
    )

    assert shown in page.content.decode()
    assert "01 Feb 2027" not in page.content.decode()
    assert "Accept-Language" in page["Vary"]
    # The date input's value is ISO whatever the locale; the browser shows it as `shown`.
    assert 'type="date"' in edit.content.decode()
    assert 'value="2027-02-01"' in edit.content.decode()


def test_times_are_24_hour_after_the_localised_date(rf):
    from assetsonar.locale_dates import _locale, format_datetime

    token = _locale.set("en-gb")
    try:
        moment = datetime(2026, 12, 1, 15, 4, 5, tzinfo=UTC)
        assert format_datetime(moment) == "01/12/2026 15:04"
        assert format_datetime(moment, seconds=True) == "01/12/2026 15:04:05"
    finally:
        _locale.reset(token)


def test_the_language_of_messages_does_not_follow(manager_client):
    response = manager_client.post(
        reverse("licenses:create"), {"name": ""}, HTTP_ACCEPT_LANGUAGE="de-DE"
    )

    assert "Dieses Feld" not in response.content.decode()
