"""The builder's small things (issue 7, items 8 and 28): "Choose at least one action" where the
choice is made, and the payload preview reachable by keyboard."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from automations.tests.builder_factories import builder_data

pytestmark = pytest.mark.django_db


def section(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    return html[start : html.index("</section>", start)]


def test_no_action_is_reported_in_the_actions_section_too(manager_client):
    response = manager_client.post(reverse("automations:create"), builder_data(revoke=None))

    html = response.content.decode()
    message = "Choose at least one action: add one from the list below."
    assert message in html[: html.index('id="step-actions"')]  # the summary at the top
    actions = section(html, "step-actions")
    assert message in actions
    assert 'id="actions-errors" role="alert"' in actions


def test_the_payload_preview_is_a_focusable_named_region(manager_client):
    html = manager_client.get(reverse("automations:create")).content.decode()

    pre = re.search(r'<pre id="payload-preview"[^>]*>', html).group(0)
    assert 'tabindex="0"' in pre
    assert 'role="region"' in pre and 'aria-label="JSON payload preview"' in pre
