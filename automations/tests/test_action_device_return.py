"""The "Request the return of devices" action kind (automations/actions/device_return.py): the
engine opens one return request per device in custody, the notices reach a real SMTP server on
127.0.0.1, the categories filter, a re-run opens and mails nothing, devices it cannot ask back
are logged skipped with the reason, the builder's checks, the registry's, the lock and the return
of one automation acting on the same devices, the pages, and the whole story from the
deactivation to the check-in with the reminders on a clock the tests move."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset, ReturnRequest
from assets.returns import return_request_open, returns_remind_due
from assets.services import asset_check_in
from assetsonar import roles
from automations import services
from automations.actions import REGISTRY, ActionSpec
from automations.actions.base import check_kinds
from automations.actions.device_return import (
    DAYS_MESSAGE,
    NO_DEVICE_INSIGHT,
    NO_ESCALATION_MESSAGE,
    REMINDERS_MESSAGE,
    DeviceReturnForm,
)
from automations.engine.common import Prep, RunContext, log_key
from automations.engine.runner import event_process
from automations.models import Action, ActionLog, Automation, Event, Execution
from automations.tests.engine_factories import (
    make_connection,
    make_device,
    mdm_commands,
    use_sync_q,
)
from automations.triggers import MEMBER_DEACTIVATED
from conftest import make_asset, make_member, make_user
from members.services import member_deactivate

pytestmark = pytest.mark.django_db

KIND = REGISTRY["device_return"]
CONFIG = {
    "categories": ["laptop", "phone"],
    "reminder_every_days": 7,
    "max_reminders": 3,
    "escalate_to": ["it-ops@example.com"],
    "escalate_to_role": "",
}


@pytest.fixture
def leaver():
    manager = make_member(full_name="Alex Chen", email="alex.chen@example.com")
    return make_member(full_name="Jordan Rivera", email="jordan@example.com", manager=manager)


@pytest.fixture
def engine(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)


def automation_with(*actions: tuple[str, dict], name="Offboard leavers") -> Automation:
    automation = Automation.objects.create(name=name, trigger_event=MEMBER_DEACTIVATED)
    for position, (kind, config) in enumerate(actions):
        action = Action(automation=automation, kind=kind, position=position)
        REGISTRY[kind].write(action, config)
        action.save()
    return automation


def deactivate(member, capture, *, execute=True) -> Event:
    with capture(execute=execute):
        member_deactivate(member=member, actor=None, reason="Left")
    return Event.objects.filter(member=member).latest("pk")


def return_logs(**filters):
    return list(ActionLog.objects.filter(action_kind="device_return", **filters).order_by("pk"))


def mails_to(server, address):
    return [m for m in server.messages if m.rcpt_tos == [address]]


def test_deactivating_asks_for_each_device_back_and_mails_member_and_manager_once(
    leaver, engine, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver, asset_tag="AT-100", name="MacBook Air")
    phone = make_asset(
        custodian=leaver,
        asset_tag="AT-101",
        name="iPhone 15",
        category=Asset.Category.PHONE,
        platform=Asset.Platform.IOS,
    )
    monitor = make_asset(
        custodian=leaver,
        asset_tag="AT-102",
        name="Dell U2723",
        category=Asset.Category.MONITOR,
        platform=Asset.Platform.NONE,
    )
    automation = automation_with(("device_return", CONFIG))
    action = automation.actions.get()

    event = deactivate(leaver, django_capture_on_commit_callbacks)

    execution = Execution.objects.get(event=event)
    assert execution.status == Execution.Status.SUCCEEDED
    logs = return_logs()
    assert [(log.asset_id, log.target_type, log.status, log.insight) for log in logs] == [
        (a.pk, "asset", "succeeded", "Return requested; reminders every 7 days")
        for a in (laptop, phone)
    ]
    assert [log.key for log in logs] == [
        log_key(event.pk, automation.pk, action.pk, f"asset:{a.pk}") for a in (laptop, phone)
    ]
    # The monitor is outside the chosen categories: not asked for, no log.
    monitor.refresh_from_db()
    assert monitor.status == Asset.Status.IN_CUSTODY
    for asset in (laptop, phone):
        request = ReturnRequest.objects.get(asset=asset, closed_at=None)
        assert request.source_execution_id == execution.pk
        assert request.source_label == f"Offboard leavers · execution {execution.pk}"
        assert request.source_key.endswith(f":member:{leaver.pk}:asset:{asset.pk}")
        assert (request.reminder_every_days, request.max_reminders) == (7, 3)
        assert request.escalate_to_emails == ["it-ops@example.com"]
        assert request.requested_by == "Automation: Offboard leavers"
        assert logs[[laptop, phone].index(asset)].detail["return_request_id"] == request.pk
        asset.refresh_from_db()
        assert (asset.status, asset.custodian_id) == (Asset.Status.RETURN_REQUESTED, leaver.pk)
    # One notice each, listing both devices and not the monitor.
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "alex.chen@example.com",
        "jordan@example.com",
    ]
    (to_member,) = mails_to(smtp_server, "jordan@example.com")
    assert to_member.header("Subject") == "Please return your company devices"
    assert "AT-100 · MacBook Air" in to_member.text and "AT-101 · iPhone 15" in to_member.text
    assert "AT-102" not in to_member.text
    (to_manager,) = mails_to(smtp_server, "alex.chen@example.com")
    assert to_manager.header("Subject") == "Jordan Rivera: devices to return"
    assert "AT-101 · iPhone 15" in to_manager.text and "AT-101 · iPhone 15" in to_manager.html


def test_no_category_asks_for_every_device_and_none_held_is_one_skipped_log(
    leaver, engine, smtp_server, django_capture_on_commit_callbacks
):
    devices = [
        make_asset(custodian=leaver),
        make_asset(custodian=leaver, category=Asset.Category.MONITOR, platform="none"),
    ]
    automation_with(("device_return", {**CONFIG, "categories": []}))
    deactivate(leaver, django_capture_on_commit_callbacks)
    assert sorted(log.asset_id for log in return_logs()) == sorted(d.pk for d in devices)

    empty_handed = make_member(full_name="Sam Empty")
    make_asset(custodian=empty_handed, category=Asset.Category.MONITOR, platform="none")
    Automation.objects.update(enabled=False)
    automation_with(("device_return", {**CONFIG, "categories": ["tablet"]}), name="Tablets")
    sent = len(smtp_server.messages)
    deactivate(empty_handed, django_capture_on_commit_callbacks)

    (log,) = return_logs(execution__member=empty_handed)
    assert (log.target_type, log.status, log.insight) == ("member", "skipped", NO_DEVICE_INSIGHT)
    assert log.target_label == "Sam Empty"
    assert Execution.objects.get(member=empty_handed).status == Execution.Status.SUCCEEDED
    assert len(smtp_server.messages) == sent


def test_a_rerun_opens_nothing_and_mails_nothing_twice(
    leaver, engine, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver)
    automation_with(("device_return", CONFIG))
    event = deactivate(leaver, django_capture_on_commit_callbacks)
    assert len(smtp_server.messages) == 2

    # The engine again, as after a worker that died before settling the event.
    Event.objects.filter(pk=event.pk).update(
        status=Event.Status.PROCESSING, last_dispatched_at=timezone.now() - timedelta(hours=1)
    )
    Execution.objects.filter(event=event).update(status=Execution.Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        event_process(event_id=event.pk)
    # The kind itself again, with its log started once more (its lease over): the service finds
    # the request this run opened and the log says so, succeeded, without a second notice.
    (log,) = return_logs()
    ActionLog.objects.filter(pk=log.pk).update(status=ActionLog.Status.PENDING)
    execution = Execution.objects.get(event=event)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        jobs = KIND.prepare(
            items=[Prep(execution, log.action, Event.objects.get(pk=event.pk))],
            context=RunContext(),
        )

    assert jobs == []
    assert ReturnRequest.objects.filter(asset=laptop).count() == 1
    assert len(smtp_server.messages) == 2
    log.refresh_from_db()
    assert (log.status, log.insight, log.attempts) == (
        "succeeded",
        "Return requested; reminders every 7 days",
        2,
    )
    assert Execution.objects.get(event=event).status == Execution.Status.SUCCEEDED


def test_devices_it_cannot_ask_back_are_skipped_with_the_reason(
    leaver, engine, smtp_server, django_capture_on_commit_callbacks
):
    asked_before = make_asset(custodian=leaver, asset_tag="AT-200")
    returned = make_asset(custodian=leaver, asset_tag="AT-201")
    kept = make_asset(custodian=leaver, asset_tag="AT-202")
    earlier = return_request_open(asset=asked_before, member=leaver, actor=None)
    smtp_server.messages.clear()
    automation_with(("device_return", CONFIG))
    # The event records the custody; a device comes back before the worker runs.
    event = deactivate(leaver, django_capture_on_commit_callbacks, execute=False)
    asset_check_in(asset=returned, actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        event_process(event_id=event.pk)

    by_asset = {log.asset_id: log for log in return_logs()}
    assert (by_asset[kept.pk].status, by_asset[kept.pk].insight) == (
        "succeeded",
        "Return requested; reminders every 7 days",
    )
    assert by_asset[returned.pk].status == "skipped"
    assert by_asset[returned.pk].insight == f"AT-201 is no longer in {leaver}'s custody."
    assert by_asset[asked_before.pk].status == "skipped"
    assert by_asset[asked_before.pk].insight == (
        f"Already requested {timezone.localtime(earlier.requested_at):%d %b %Y}."
    )
    assert ReturnRequest.objects.get(asset=asked_before, closed_at=None) == earlier
    (to_member,) = mails_to(smtp_server, "jordan@example.com")
    assert "AT-202" in to_member.text and "AT-200" not in to_member.text


def test_a_role_deleted_after_saving_fails_each_device_with_the_reason(
    leaver, engine, smtp_server, django_capture_on_commit_callbacks
):
    from django.contrib.auth.models import Group

    Group.objects.create(name="Returns desk")
    make_asset(custodian=leaver)
    automation_with(("device_return", {**CONFIG, "escalate_to_role": "Returns desk"}))
    Group.objects.filter(name="Returns desk").delete()

    deactivate(leaver, django_capture_on_commit_callbacks)

    (log,) = return_logs()
    assert (log.status, log.insight) == (
        "failed",
        "Not requested: There is no role named “Returns desk”.",
    )
    assert not ReturnRequest.objects.exists() and smtp_server.messages == []

    # Once the role is back, "Retry failed actions" asks for the device and sends the notices.
    from automations.engine.retry import execution_retry_failed

    Group.objects.create(name="Returns desk")
    with django_capture_on_commit_callbacks(execute=True):
        execution_retry_failed(execution=log.execution, actor=None)
    log.refresh_from_db()
    assert (log.status, log.insight) == ("succeeded", "Return requested; reminders every 7 days")
    assert ReturnRequest.objects.get().escalate_to_role == "Returns desk"
    assert len(smtp_server.messages) == 2


@pytest.mark.parametrize("lock_first", [True, False])
def test_the_lock_and_the_return_of_one_automation_act_on_the_same_devices(
    leaver, engine, smtp_server, django_capture_on_commit_callbacks, lock_first
):
    mdm_commands(True)
    connection = make_connection("simulator")
    laptop = make_device(leaver, connection)
    phone = make_device(leaver, connection, category=Asset.Category.PHONE, platform="ios")
    lock = ("mdm_lock", {"message": "Return it to IT.", "phone": "+1 555 0100"})
    ask = ("device_return", CONFIG)
    revoke = ("revoke_licenses", {"user_based": True})
    automation_with(*((revoke, lock, ask) if lock_first else (ask, lock)))

    deactivate(leaver, django_capture_on_commit_callbacks)

    locks = ActionLog.objects.filter(action_kind="mdm_lock")
    returns = ActionLog.objects.filter(action_kind="device_return")
    devices = sorted([laptop.pk, phone.pk])
    assert sorted(locks.values_list("asset_id", flat=True)) == devices
    assert sorted(returns.values_list("asset_id", flat=True)) == devices
    assert set(locks.values_list("status", flat=True)) == {"succeeded"}
    assert set(returns.values_list("status", flat=True)) == {"succeeded"}
    for asset in Asset.objects.filter(pk__in=devices):
        assert asset.custodian_id == leaver.pk
        assert asset.status == Asset.Status.RETURN_REQUESTED
        assert asset.lock_state == Asset.LockState.LOCKED
    assert len(mails_to(smtp_server, "jordan@example.com")) == 1


# --- The builder's settings ---------------------------------------------------------------------


def card(**data):
    base = {
        "r-categories": ["laptop", "phone"],
        "r-reminder_every_days": "7",
        "r-max_reminders": "3",
        "r-escalate_to": "it-ops@example.com",
        "r-escalate_to_role": "",
    }
    base.update({f"r-{k}": v for k, v in data.items()})
    return DeviceReturnForm(data=base, prefix="r")


def test_the_card_checks_each_setting_with_a_clear_message():
    good = card(escalate_to="it-ops@example.com, sec@example.com", escalate_to_role="IT Manager")
    assert good.is_valid(), good.errors
    assert KIND.config_from_form(good) == {
        "categories": ["laptop", "phone"],
        "reminder_every_days": 7,
        "max_reminders": 3,
        "escalate_to": ["it-ops@example.com", "sec@example.com"],
        "escalate_to_role": roles.IT_MANAGER,
    }
    for data, field, message in [
        ({"reminder_every_days": "0"}, "reminder_every_days", DAYS_MESSAGE),
        ({"reminder_every_days": "61"}, "reminder_every_days", DAYS_MESSAGE),
        ({"reminder_every_days": "soon"}, "reminder_every_days", DAYS_MESSAGE),
        ({"max_reminders": "11"}, "max_reminders", REMINDERS_MESSAGE),
        ({"max_reminders": "-1"}, "max_reminders", REMINDERS_MESSAGE),
        ({"escalate_to": "it-ops@, x@example.com"}, "escalate_to", "“it-ops@” is not a valid"),
        ({"escalate_to": ""}, "escalate_to", NO_ESCALATION_MESSAGE),
        ({"escalate_to_role": "Nobody"}, "escalate_to_role", "Select a valid choice"),
        ({"categories": ["toaster"]}, "categories", "Select a valid choice"),
    ]:
        form = card(**data)
        assert not form.is_valid()
        assert message in " ".join(form.errors[field]), (data, form.errors)
    # A role alone is enough to escalate to.
    assert card(escalate_to="", escalate_to_role=roles.IT_MANAGER).is_valid()


def test_the_service_refuses_bad_settings_per_field(it_manager):
    spec = services.AutomationSpec(
        name="Returns",
        trigger_module="members",
        trigger_event=MEMBER_DEACTIVATED,
        actions=(
            ActionSpec(
                "device_return",
                {
                    "categories": ["toaster"],
                    "reminder_every_days": 0,
                    "max_reminders": 99,
                    "escalate_to": ["not-an-address"],
                    "escalate_to_role": "Nobody",
                },
            ),
        ),
    )
    with pytest.raises(ValidationError) as exc:
        services.automation_create(actor=it_manager, spec=spec)
    errors = exc.value.message_dict
    assert errors["action-0:categories"] == ["“toaster” is not an asset category."]
    assert errors["action-0:reminder_every_days"] == [DAYS_MESSAGE]
    assert errors["action-0:max_reminders"] == [REMINDERS_MESSAGE]
    assert errors["action-0:escalate_to"] == ["“not-an-address” is not a valid email address."]
    assert errors["action-0:escalate_to_role"] == ["There is no role named “Nobody”."]

    ok = services.automation_create(
        actor=it_manager,
        spec=services.AutomationSpec(
            name="Returns",
            trigger_module="members",
            trigger_event=MEMBER_DEACTIVATED,
            actions=(ActionSpec("device_return", CONFIG),),
        ),
    )
    assert ok.automation.actions.get().config == CONFIG


def test_summary_snapshot_admin_text_and_plan(leaver):
    assert KIND.summary(CONFIG) == (
        "ask for the return of laptops and phones, reminding every 7 days, "
        "escalating to it-ops@example.com after 3 reminders"
    )
    assert KIND.summary(
        {**CONFIG, "categories": [], "max_reminders": 1, "escalate_to_role": "IT Manager"}
    ) == (
        "ask for the return of their devices, reminding every 7 days, escalating to "
        "it-ops@example.com and the IT Manager role after 1 reminder"
    )
    # Half-typed builder values give a sentence too (the live summary).
    assert KIND.summary({"reminder_every_days": "3", "escalate_to": "a@example.com"}).startswith(
        "ask for the return of their devices, reminding every 3 days"
    )
    assert KIND.snapshot(CONFIG) == {
        "Return devices": "Laptop, Phone",
        "Remind every": "7 days",
        "Escalate after": "3 reminders",
        "Escalate to": "it-ops@example.com",
    }
    action = Action(kind="device_return", config=CONFIG)
    assert KIND.admin_text(action).startswith("Request the return of laptops and phones")
    laptop = make_asset(custodian=leaver, asset_tag="AT-300")
    make_asset(custodian=leaver, asset_tag="AT-301", category="monitor", platform="none")
    make_asset(asset_tag="AT-302")  # nobody's
    assert [t.label for t in planned(leaver, CONFIG)] == [str(laptop)]
    assert len(planned(leaver, {**CONFIG, "categories": []})) == 2


def planned(member, config):
    """The kind's plan for the member as a deactivation now would carry them."""
    from automations.engine.common import Prep, RunContext
    from automations.models import Event, Execution
    from automations.selectors_preview import event_snapshots

    event = Event(member_id=member.pk, member_snapshot=event_snapshots([member.pk])[member.pk])
    item = Prep(Execution(), Action(kind=KIND.key, config=config), event)
    (targets,) = KIND.plan(items=[item], context=RunContext())
    return targets


def test_the_registry_lists_it_after_the_seeds_three_and_its_check_passes():
    keys = list(REGISTRY)
    assert keys[:3] == ["webhook", "revoke_licenses", "mdm_lock"]
    assert "device_return" in keys[3:]
    assert KIND.label == "Request the return of devices"
    assert KIND.description and "\n" not in KIND.description
    assert check_kinds() == []


# --- The pages ----------------------------------------------------------------------------------


def test_the_execution_page_member_panel_and_asset_page_show_the_returns_by_device(
    leaver, engine, smtp_server, django_capture_on_commit_callbacks, manager_client
):
    laptop = make_asset(custodian=leaver, asset_tag="AT-400", name="MacBook Air")
    automation_with(("device_return", CONFIG))
    event = deactivate(leaver, django_capture_on_commit_callbacks)
    execution = Execution.objects.get(event=event)
    request = ReturnRequest.objects.get(asset=laptop)
    asset_url = reverse("assets:detail", args=[laptop.pk])

    page = manager_client.get(reverse("automations:execution_detail", args=[execution.pk]))
    html = page.content.decode()
    assert 'data-kind="device_return"' in html and "Request device return" in html
    assert f'<a href="{asset_url}">AT-400 · MacBook Air</a>' in html
    assert f'data-return-request="{request.pk}"' in html
    assert f'href="{asset_url}#return-h"' in html
    assert "Return requested; reminders every 7 days" in html

    panel = manager_client.get(reverse("automations:member_actions_panel", args=[leaver.pk]))
    assert f'<a href="{asset_url}">AT-400 · MacBook Air</a>' in panel.content.decode()

    asset_page = manager_client.get(asset_url).content.decode()
    assert "Return requested" in asset_page
    assert f"Offboard leavers · execution {execution.pk}" in asset_page


@pytest.mark.parametrize("size", [1, 12])
def test_the_execution_page_query_budget_with_returns(
    leaver, engine, smtp_server, django_capture_on_commit_callbacks, client,
    django_assert_max_num_queries, size,
):  # fmt: skip
    from automations.tests.test_executions_views import DETAIL_BUDGET

    for _ in range(size):
        make_asset(custodian=leaver)
    automation_with(("device_return", CONFIG))
    event = deactivate(leaver, django_capture_on_commit_callbacks)
    client.force_login(make_user("viewer", roles.IT_MANAGER))

    with django_assert_max_num_queries(DETAIL_BUDGET + 1):
        response = client.get(
            reverse("automations:execution_detail", args=[Execution.objects.get(event=event).pk])
        )
    assert response.content.decode().count("data-return-request=") == size


# --- End to end ---------------------------------------------------------------------------------


def test_deactivate_then_reminder_then_check_in_closes_the_request(
    leaver, engine, smtp_server, django_capture_on_commit_callbacks
):
    laptop = make_asset(custodian=leaver, asset_tag="AT-500", name="ThinkPad X1")
    automation_with(("device_return", {**CONFIG, "reminder_every_days": 3, "max_reminders": 2}))
    deactivate(leaver, django_capture_on_commit_callbacks)
    request = ReturnRequest.objects.get(asset=laptop, closed_at=None)
    assert len(smtp_server.messages) == 2

    returns_remind_due(now=request.requested_at + timedelta(days=3, minutes=-1))
    assert len(smtp_server.messages) == 2
    returns_remind_due(now=request.requested_at + timedelta(days=3))
    reminders = [m for m in smtp_server.messages if ":reminder:" in m.header("X-AssetSonar-Key")]
    assert sorted(m.rcpt_tos[0] for m in reminders) == [
        "alex.chen@example.com",
        "jordan@example.com",
    ]
    assert all("AT-500 · ThinkPad X1" in m.text for m in reminders)

    asset_check_in(asset=laptop, actor=None)
    request.refresh_from_db()
    assert request.closed_reason == ReturnRequest.ClosedReason.CHECKED_IN
    for later in (6, 9, 30):
        returns_remind_due(now=request.requested_at + timedelta(days=later))
    assert len(smtp_server.messages) == 4
    laptop.refresh_from_db()
    assert (laptop.status, laptop.custodian_id) == (Asset.Status.AVAILABLE, None)


# --- Through the builder ------------------------------------------------------------------------


def return_row(**settings) -> tuple[str, dict]:
    base = {
        "categories": ["laptop", "phone"],
        "reminder_every_days": "7",
        "max_reminders": "3",
        "escalate_to": "it-ops@example.com",
        "escalate_to_role": "",
    }
    return ("device_return", {**base, **settings})


def test_the_builder_adds_saves_and_describes_a_device_return(manager_client):
    from automations.tests.builder_factories import action_rows, builder_data

    create = reverse("automations:create")
    menu = manager_client.get(create).text
    assert "Request the return of devices" in menu and KIND.description in menu

    added = manager_client.post(create, builder_data(revoke=None, action_op="add:device_return"))
    assert 'data-kind="device_return"' in added.text
    assert 'name="actions-0-reminder_every_days"' in added.text
    assert not Automation.objects.exists()

    bad = builder_data(revoke=None)
    bad.update(action_rows(return_row(reminder_every_days="90", escalate_to="")))
    html = manager_client.post(create, bad).text
    assert DAYS_MESSAGE in html and NO_ESCALATION_MESSAGE in html
    assert not Automation.objects.exists()

    good = builder_data(revoke=None)
    good.update(action_rows(return_row(escalate_to_role=roles.IT_MANAGER)))
    response = manager_client.post(create, good)
    assert response.status_code == 302, response.text
    automation = Automation.objects.get()
    assert automation.actions.get().config == {**CONFIG, "escalate_to_role": roles.IT_MANAGER}

    detail = manager_client.get(reverse("automations:detail", args=[automation.pk])).text
    assert (
        "ask for the return of laptops and phones, reminding every 7 days, escalating to "
        "it-ops@example.com and the IT Manager role after 3 reminders"
    ) in detail
    assert "Escalate after" in detail

    preview = dict(good, name="Other")
    preview.update(action_rows(return_row(reminder_every_days="3", categories=["tablet"])))
    text = manager_client.post(reverse("automations:builder_preview"), preview).text
    assert "ask for the return of tablets, reminding every 3 days" in text


def test_the_django_admin_shows_the_settings_and_each_device_log(
    leaver, engine, smtp_server, django_capture_on_commit_callbacks, admin_client
):
    make_asset(custodian=leaver, asset_tag="AT-600", name="MacBook Air")
    automation = automation_with(("device_return", CONFIG))
    event = deactivate(leaver, django_capture_on_commit_callbacks)
    (log,) = return_logs()

    page = admin_client.get(reverse("admin:automations_automation_change", args=[automation.pk]))
    assert "Request the return of laptops and phones, reminding every 7 days" in page.text
    execution = Execution.objects.get(event=event)
    page = admin_client.get(reverse("admin:automations_execution_change", args=[execution.pk]))
    assert "Request device return" in page.text and "AT-600 · MacBook Air" in page.text
    page = admin_client.get(reverse("admin:automations_actionlog_change", args=[log.pk]))
    assert page.status_code == 200 and "Return requested; reminders every 7 days" in page.text
