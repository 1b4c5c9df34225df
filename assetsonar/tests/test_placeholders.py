"""The placeholder language of email templates (assetsonar/placeholders.py)."""

from __future__ import annotations

import pytest

from assetsonar import placeholders
from assetsonar.placeholders import (
    PLACEHOLDERS,
    PlaceholderError,
    member_context,
    render,
    render_message,
    sample_context,
    validate,
)
from conftest import make_asset, make_entitlement, make_license, make_member

# --- Validation ------------------------------------------------------------------------------


def test_a_template_of_known_placeholders_is_valid():
    template = "Hello {{member.manager.first_name}},\n{{ member.full_name }} leaves: {{ devices }}"
    assert validate(template) == []
    assert placeholders.placeholders_in(template) == [
        "member.manager.first_name",
        "member.full_name",
        "devices",
    ]


def test_an_unknown_placeholder_is_refused_with_a_suggestion_and_the_known_list():
    errors = validate("Hi {{ member.manager.full_name }},\nabout {{ member.fullname }}")
    assert errors[0] == (
        "Unknown placeholder {{ member.fullname }} on line 2. Did you mean {{ member.full_name }}?"
    )
    assert errors[1].startswith("Known placeholders: {{ member.full_name }}, {{ member.email }}")
    for name in PLACEHOLDERS:
        assert "{{ " + name + " }}" in errors[1]
    assert len(errors) == 2


def test_the_known_list_comes_once_however_many_unknown_placeholders():
    errors = validate("{{ nope }} {{ member.salary }} {{ member.manager.phone }}")
    assert [e.split(" on line")[0] for e in errors[:3]] == [
        "Unknown placeholder {{ nope }}",
        "Unknown placeholder {{ member.salary }}",
        "Unknown placeholder {{ member.manager.phone }}",
    ]
    assert len(errors) == 4
    assert errors[3].startswith("Known placeholders:")


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("Hello {{ member.full_name", "“{{” on line 1 is not closed with “}}”."),
        ("Hello\n}} there", "“}}” on line 2 closes no “{{”"),
        ("{{ member.email {{ member.full_name }}", "“{{” on line 1 is not closed with “}}”."),
        ("{{ }}", "“{{ }}” on line 1 is not a placeholder"),
        ("{{ member.full_name|upper }}", "“{{ member.full_name|upper }}” on line 1 is not a"),
        ("{{ member.__class__ }}", "“{{ member.__class__ }}” on line 1 is not a placeholder"),
        ("{{ member.full_name() }}", "is not a placeholder"),
    ],
)
def test_unbalanced_braces_and_expressions_are_refused(template, error):
    errors = validate(template)
    assert any(e.startswith(error) or error in e for e in errors), errors


def test_render_refuses_an_invalid_template_with_the_same_errors():
    with pytest.raises(PlaceholderError) as caught:
        render("{{ member.nickname }}", sample_context())
    assert caught.value.errors == validate("{{ member.nickname }}")


def test_django_template_syntax_is_plain_text_and_never_runs():
    template = '{% now "Y" %} {{ member.full_name }} {% for x in y %}{# c #}'
    assert (
        render(template, sample_context()) == '{% now "Y" %} Jordan Rivera {% for x in y %}{# c #}'
    )


def test_registering_checks_the_name_and_refuses_a_second_one():
    with pytest.raises(ValueError, match="already registered"):
        placeholders.register("member.email", "again", lambda c: "")
    with pytest.raises(ValueError, match="not a placeholder name"):
        placeholders.register("Member.Email", "bad", lambda c: "")


# --- Rendering -------------------------------------------------------------------------------


def test_every_placeholder_has_a_value_on_the_sample_member():
    context = sample_context(portal_url="https://assets.example.com")
    empty = [name for name, p in PLACEHOLDERS.items() if not p.resolve(context)]
    assert empty == []
    catalogue = {row["name"]: row for row in placeholders.catalogue(context)}
    assert catalogue.keys() == PLACEHOLDERS.keys()
    assert catalogue["member.manager.full_name"]["example"] == "Alex Chen"
    assert catalogue["devices.count"]["example"] == "2"


def test_the_sample_renders_every_kind_of_value():
    template = (
        "{{ member.first_name }} ({{ member.employee_id }}, {{ member.employment_type }}) "
        "left on {{ member.last_working_day }} [{{ member.time_zone }}, "
        "{{ member.personal_email }}]. Manager: {{ member.manager.full_name }} "
        "<{{ member.manager.email }}>.\n"
        "Devices ({{ devices.count }}):\n{{ devices }}\n"
        "Licenses ({{ licenses.count }}):\n{{ licenses }}\n"
        "{{ member.url }} · {{ portal_url }} · {{ member.deactivated_at }} · {{ member.status }}"
    )
    text = render(template, sample_context(portal_url="https://assets.example.com"))
    assert text == (
        "Jordan (E01042, Full-time) left on 27 November 2026 [Europe/Berlin, "
        "jordan.r@example.net]. Manager: Alex Chen <alex.chen@example.com>.\n"
        "Devices (2):\n"
        "AT-00318 · MacBook Pro 14 · C02ZK1XYMD6T\n"
        "AT-00542 · iPhone 15 · F2LZQ8ABN72J\n"
        "Licenses (3):\n"
        "Adobe Creative Cloud · Adobe\n"
        "Figma · Figma\n"
        "JetBrains IntelliJ IDEA · JetBrains · on AT-00318\n"
        "https://assets.example.com/members/1042/ · https://assets.example.com · "
        "28 November 2026, 09:30 · Deactivated"
    )


def test_html_escapes_member_data_and_the_template_text_while_the_text_part_stays_raw():
    context = sample_context()
    context.member.full_name = "<script>alert('x')</script>"
    context.member.department = "R&D"
    context.devices[0].name = 'Mac "<b>Pro</b>"'
    template = "<b>Hi</b> {{ member.full_name }} of {{ member.department }}\n{{ devices }}"

    text = render(template, context)
    html = render(template, context, html=True)

    assert text == (
        "<b>Hi</b> <script>alert('x')</script> of R&D\n"
        'AT-00318 · Mac "<b>Pro</b>" · C02ZK1XYMD6T\n'
        "AT-00542 · iPhone 15 · F2LZQ8ABN72J"
    )
    assert html == (
        "&lt;b&gt;Hi&lt;/b&gt; &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; of R&amp;D<br>\n"
        "AT-00318 · Mac &quot;&lt;b&gt;Pro&lt;/b&gt;&quot; · C02ZK1XYMD6T<br>\n"
        "AT-00542 · iPhone 15 · F2LZQ8ABN72J"
    )
    assert "<script>" not in html


def test_links_are_links_in_html_only_and_are_escaped():
    context = sample_context(portal_url='https://assets.example.com/"x')
    html = render("{{ portal_url }}", context, html=True)
    assert html == (
        '<a href="https://assets.example.com/&quot;x">https://assets.example.com/&quot;x</a>'
    )
    assert render("{{ portal_url }}", context) == 'https://assets.example.com/"x'


def test_empty_lists_and_a_missing_manager_render_plainly():
    context = sample_context()
    context.member.manager = None
    empty = placeholders.PlaceholderContext(
        member=context.member, devices=[], licenses=[], portal_url="https://a.example.com"
    )
    template = "[{{ member.manager.full_name }}] {{ devices }} / {{ licenses.count }}"
    assert render(template, empty) == "[] (none) / 0"
    assert render(template, empty, html=True) == "[] (none) / 0"


def test_render_message_makes_a_one_line_subject_and_a_whole_html_document():
    context = sample_context()
    context.member.full_name = "Jordan\r\nBcc: victim@example.com <i>"
    message = render_message(
        subject="Offboarding {{ member.full_name }}: {{ devices }}",
        body="Devices:\n{{ devices }}",
        context=context,
    )
    assert message.subject == (
        "Offboarding Jordan Bcc: victim@example.com <i>: AT-00318 · MacBook Pro 14 · "
        "C02ZK1XYMD6T AT-00542 · iPhone 15 · F2LZQ8ABN72J"
    )
    assert message.text == (
        "Devices:\nAT-00318 · MacBook Pro 14 · C02ZK1XYMD6T\nAT-00542 · iPhone 15 · F2LZQ8ABN72J"
    )
    assert message.html.startswith("<!DOCTYPE html>")
    assert "<title>Offboarding Jordan Bcc: victim@example.com &lt;i&gt;: AT-00318" in message.html
    assert "Devices:<br>\nAT-00318 · MacBook Pro 14 · C02ZK1XYMD6T<br>\nAT-00542" in message.html


# --- A real member ---------------------------------------------------------------------------


def _leaver(n_devices: int, n_licenses: int):
    manager = make_member(full_name="Morgan Lee", email="morgan.lee@example.com")
    member = make_member(full_name="Sam Okafor", email="sam.okafor@example.com", manager=manager)
    devices = [
        make_asset(asset_tag=f"AT-{900 - i:05d}", name=f"Device {i}", custodian=member)
        for i in range(n_devices)
    ]
    make_asset(asset_tag="AT-99999", name="Someone else's")  # not theirs
    for i in range(n_licenses):
        license = make_license(name=f"App {i:02d}", vendor="Acme")
        make_entitlement(license=license, member=member, asset=devices[0] if i == 0 else None)
    revoked = make_entitlement(license=make_license(name="Revoked app"), member=member)
    revoked.revoked_at = revoked.assigned_at
    revoked.save()
    return member


@pytest.mark.django_db
@pytest.mark.parametrize(("n_devices", "n_licenses"), [(1, 1), (12, 9)])
def test_a_members_context_is_three_queries_and_a_render_none(
    django_assert_num_queries, n_devices, n_licenses
):
    member = _leaver(n_devices, n_licenses)
    with django_assert_num_queries(3):
        context = member_context(member_id=member.pk, portal_url="https://assets.example.com")
    template = "\n".join("{{ " + name + " }}" for name in PLACEHOLDERS)
    with django_assert_num_queries(0):
        render(template, context)
        render(template, context, html=True)

    assert render("{{ devices.count }}/{{ licenses.count }}", context) == (
        f"{n_devices}/{n_licenses}"
    )
    lines = render("{{ devices }}", context).splitlines()
    assert lines == sorted(lines)  # by asset tag
    assert lines[0] == f"AT-{900 - n_devices + 1:05d} · Device {n_devices - 1} · " + (
        member.assets_in_custody.get(name=f"Device {n_devices - 1}").serial_number
    )
    licenses = render("{{ licenses }}", context).splitlines()
    assert licenses[0] == "App 00 · Acme · on AT-00900"
    assert "Revoked app" not in "".join(licenses)
    assert render("{{ member.manager.full_name }} {{ member.url }}", context) == (
        f"Morgan Lee https://assets.example.com/members/{member.pk}/"
    )


@pytest.mark.django_db
def test_fields_not_yet_on_member_render_empty_on_a_real_member(settings):
    """last_working_day, time_zone and personal_email come with another branch: until then (or
    while unset) they render as empty text, not an error."""
    settings.PORTAL_URL = "https://portal.example.org"
    member = make_member(full_name="Ana Silva")
    context = member_context(member_id=member.pk)
    assert (
        render(
            "[{{ member.last_working_day }}|{{ member.time_zone }}|{{ member.personal_email }}]",
            context,
        )
        == "[||]"
    )
    assert context.portal_url == "https://portal.example.org"
    assert render("{{ member.manager.email }}|{{ devices }}", context) == "|(none)"
