"""The document served without attributes/excludedAttributes is scim2-models' own serialisation."""

from __future__ import annotations

import pytest
from scim2_models import Context

from conftest import make_member
from members.services import member_deactivate
from provisioning.resources import member_to_json, user_from_member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("full", [True, False])
def test_served_document_equals_the_library_serialisation(full):
    boss = make_member()
    fields = (
        {"manager": boss, "external_id": "x-1", "given_name": "A", "family_name": "B"}
        if full
        else {"employee_id": "", "department": "", "location": "", "title": ""}
    )
    member = make_member(**fields)
    if not full:
        member, _ = member_deactivate(member=member, actor=None, reason="Left")
    ours = member_to_json(member, "http://t/scim/v2")
    library = user_from_member(member, "http://t/scim/v2").model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE
    )
    assert ours == library
