"""The Django admin looks like the portal (issue 7, item 29): its name, logo, favicon and
colours; and the audit list's filter has no link without a name (item 28)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from assetsonar.audit import audit_record
from assetsonar.models import AuditEvent
from conftest import make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, support_staff):
    client.force_login(support_staff)
    return client


def test_admin_pages_carry_the_portals_name_logo_favicon_and_stylesheet(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()

    assert re.search(r'<link rel="icon" href="[^"]*img/logo\.svg"', html)
    assert re.search(r'<div id="site-name"><a href="/admin/"><img src="[^"]*img/logo\.svg"', html)
    assert "AssetSonar" in html and "Django administration" not in html
    assert "| AssetSonar admin</title>" in html
    assert re.search(r'href="[^"]*css/admin\.css"', html)
    assert "admin/css/dark_mode.css" not in html  # one theme, the portal's


def test_the_admin_stylesheet_uses_the_portals_colours():
    admin_css = Path(finders.find("css/admin.css")).read_text()
    portal_css = Path(finders.find("css/app.css")).read_text()

    for colour in ("#0f1b33", "#1d4ed8", "#1e3a8a"):  # sidebar, primary, primary-dark
        assert colour in portal_css
        assert colour in admin_css


def test_the_sign_in_page_is_branded_too(client):
    html = client.get(reverse("admin:login")).content.decode()

    assert "img/logo.svg" in html and "css/admin.css" in html


def test_the_audit_object_type_filter_names_events_about_no_object(admin_client):
    audit_record(action=AuditEvent.Action.SIGN_IN, message="Signed in")
    audit_record(action=AuditEvent.Action.CREATED, obj=make_member())

    html = admin_client.get(reverse("admin:assetsonar_auditevent_changelist")).content.decode()

    links = re.findall(r'<a href="\?object_type=[^"]*"[^>]*>([^<]*)</a>', html)
    assert links and all(text.strip() for text in links)
    assert "No object" in links
