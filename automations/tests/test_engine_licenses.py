"""License revocation: the three options, a record per entitlement, seats freed, idempotent, and a
fixed number of queries whatever the number of entitlements."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from assetsonar.models import AuditEvent
from automations import tasks
from automations.actions.revoke_licenses import licenses_revoke
from automations.models import ActionLog, Event, Execution
from automations.tests.engine_factories import make_engine_automation, use_sync_q
from conftest import make_asset, make_entitlement, make_license, make_member
from licenses.models import Entitlement, License
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)


@pytest.fixture
def holdings():
    """A member with one entitlement of each shape, and a colleague with the same licenses."""
    member, colleague = make_member(), make_member()
    laptop = make_asset(custodian=member)
    colleague_laptop = make_asset(custodian=colleague)
    user = make_license(kind=License.Kind.USER, seats=5)
    cloud = make_license(kind=License.Kind.CLOUD, seats=5)
    device = make_license(kind=License.Kind.DEVICE, seats=5)
    return {
        "member": member,
        "user": make_entitlement(license=user, member=member),
        "cloud": make_entitlement(license=cloud, member=member),
        "user_machine": make_entitlement(license=user, member=member, asset=laptop),
        "device": make_entitlement(license=device, asset=laptop),
        "others": [
            make_entitlement(license=user, member=colleague),
            make_entitlement(license=device, asset=colleague_laptop),
            make_entitlement(license=user, member=colleague, asset=colleague_laptop),
        ],
        "licenses": (user, cloud, device),
    }


def deactivate(member, capture):
    with capture(execute=True):
        member_deactivate(member=member, actor=None, reason="Last day")
    return Execution.objects.get(member=member)


def live(*entitlements) -> list[bool]:
    return [Entitlement.objects.get(pk=e.pk).is_live for e in entitlements]


@pytest.mark.parametrize(
    ("options", "revoked"),
    [
        ({"user_based": True}, {"user", "cloud"}),
        ({"user_machine": True}, {"user_machine"}),
        ({"device_based": True}, {"device"}),
        (
            {"user_based": True, "user_machine": True, "device_based": True},
            {"user", "cloud", "user_machine", "device"},
        ),
    ],
)
def test_each_option_revokes_exactly_its_entitlements(
    holdings, options, revoked, django_capture_on_commit_callbacks
):
    make_engine_automation(**options)

    execution = deactivate(holdings["member"], django_capture_on_commit_callbacks)

    shapes = ["user", "cloud", "user_machine", "device"]
    assert live(*(holdings[s] for s in shapes)) == [s not in revoked for s in shapes]
    assert all(live(*holdings["others"]))
    logs = ActionLog.objects.filter(execution=execution)
    assert {log.entitlement_id for log in logs} == {holdings[s].pk for s in revoked}
    assert {log.status for log in logs} == {ActionLog.Status.SUCCEEDED}
    assert execution.status == Execution.Status.SUCCEEDED
    entitlement = Entitlement.objects.get(pk=holdings[next(iter(revoked))].pk)
    assert f"(execution {execution.pk})" in entitlement.revoked_reason


def test_labels_say_which_license_on_which_device(holdings, django_capture_on_commit_callbacks):
    make_engine_automation(user_machine=True)
    execution = deactivate(holdings["member"], django_capture_on_commit_callbacks)
    (log,) = execution.logs.all()
    assert (
        log.target_label == f"{holdings['licenses'][0].name} on {log.entitlement.asset.asset_tag}"
    )
    assert log.key.startswith(f"{execution.event_id}:{execution.automation_id}:")


def test_seats_are_freed(holdings, django_capture_on_commit_callbacks):
    user_license = holdings["licenses"][0]
    assert user_license.entitlements.live().count() == 4
    make_engine_automation(user_based=True, user_machine=True)

    deactivate(holdings["member"], django_capture_on_commit_callbacks)

    assert user_license.entitlements.live().count() == 2  # the colleague's two remain
    audit = AuditEvent.objects.get(action=AuditEvent.Action.REVOKED)
    assert audit.message.startswith("3 license entitlements revoked by automation")


def test_running_twice_revokes_nothing_more(holdings, django_capture_on_commit_callbacks):
    make_engine_automation(user_based=True, user_machine=True, device_based=True)
    execution = deactivate(holdings["member"], django_capture_on_commit_callbacks)
    before = list(
        Entitlement.objects.order_by("pk").values_list("pk", "revoked_at", "revoked_reason")
    )
    logs_before = list(ActionLog.objects.order_by("pk").values_list("pk", "key", "status"))

    action = execution.automation.actions.get()
    licenses_revoke(execution=execution, action=action, event=execution.event)
    Event.objects.filter(pk=execution.event_id).update(status=Event.Status.PENDING)
    tasks.process_event(str(execution.event_id))

    assert (
        list(Entitlement.objects.order_by("pk").values_list("pk", "revoked_at", "revoked_reason"))
        == before
    )
    assert list(ActionLog.objects.order_by("pk").values_list("pk", "key", "status")) == logs_before
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REVOKED).count() == 1


def test_nothing_to_revoke_is_one_skipped_line(django_capture_on_commit_callbacks):
    member = make_member()
    make_engine_automation(user_based=True)
    execution = deactivate(member, django_capture_on_commit_callbacks)
    (log,) = execution.logs.all()
    assert log.status == ActionLog.Status.SKIPPED
    assert log.insight.startswith("No live entitlement matched")
    assert execution.status == Execution.Status.SUCCEEDED


def test_already_revoked_entitlements_are_not_touched(holdings, django_capture_on_commit_callbacks):
    from licenses.services import license_unentitle

    license_unentitle(entitlement=holdings["user"], actor=None, reason="Manual")
    revoked_at = Entitlement.objects.get(pk=holdings["user"].pk).revoked_at
    make_engine_automation(user_based=True)

    execution = deactivate(holdings["member"], django_capture_on_commit_callbacks)

    assert Entitlement.objects.get(pk=holdings["user"].pk).revoked_at == revoked_at
    assert [log.entitlement_id for log in execution.logs.all()] == [holdings["cloud"].pk]


def _revocation_queries(count: int) -> int:
    member = make_member()
    devices = [make_asset(custodian=member) for _ in range(count)]
    for n in range(count):
        make_entitlement(license=make_license(kind=License.Kind.USER), member=member)
        make_entitlement(
            license=make_license(kind=License.Kind.USER), member=member, asset=devices[n]
        )
        make_entitlement(license=make_license(kind=License.Kind.DEVICE), asset=devices[n])
    automation = make_engine_automation(user_based=True, user_machine=True, device_based=True)
    member_deactivate(member=member, actor=None, reason="Last day")
    event = Event.objects.get(member=member)
    execution = Execution.objects.create(
        event=event, automation=automation, automation_name=automation.name, member=member
    )
    action = automation.actions.get()
    with CaptureQueriesContext(connection) as queries:
        licenses_revoke(execution=execution, action=action, event=event)
    assert execution.logs.filter(status=ActionLog.Status.SUCCEEDED).count() == 3 * count
    assert Entitlement.objects.live().filter(member=member).count() == 0
    return len(queries)


def test_query_count_does_not_grow_with_the_entitlements():
    small = _revocation_queries(2)  # 6 entitlements
    large = _revocation_queries(70)  # 210 entitlements
    assert small == large
    assert small <= 10


def test_an_entitlement_revoked_by_someone_else_after_the_claim_is_skipped(
    holdings, monkeypatch, django_capture_on_commit_callbacks
):
    """Between the claim and the revoking UPDATE another transaction may revoke a claimed
    entitlement: its claim is closed as skipped, the others as revoked, and that revocation is
    left as it was."""
    from automations.actions import revoke_licenses as licenses

    claim = licenses._claim

    def claim_then_someone_revokes(*args, **kwargs):
        claims = claim(*args, **kwargs)
        Entitlement.objects.filter(pk=holdings["cloud"].pk).update(
            revoked_at=timezone.now(), revoked_reason="Someone else"
        )
        return claims

    monkeypatch.setattr(licenses, "_claim", claim_then_someone_revokes)
    make_engine_automation(user_based=True)

    execution = deactivate(holdings["member"], django_capture_on_commit_callbacks)

    statuses = {log.entitlement_id: (log.status, log.insight) for log in execution.logs.all()}
    assert statuses == {
        holdings["user"].pk: (ActionLog.Status.SUCCEEDED, licenses.REVOKED_INSIGHT),
        holdings["cloud"].pk: (ActionLog.Status.SKIPPED, licenses.ALREADY_REVOKED_INSIGHT),
    }
    assert Entitlement.objects.get(pk=holdings["cloud"].pk).revoked_reason == "Someone else"
    assert not Entitlement.objects.get(pk=holdings["user"].pk).is_live
    assert execution.status == Execution.Status.SUCCEEDED
