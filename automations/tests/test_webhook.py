"""Webhook delivery against a real receiver on 127.0.0.1: Standard Webhooks signatures checked by
an independent verifier, headers, retries through django-q2's scheduler, 410, 4xx, hangs and
dropped connections, and the attempt history with secrets redacted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule
from standardwebhooks import Webhook

from automations.actions.webhook import webhook_id_for
from automations.engine import common
from automations.models import Action, ActionLog, Execution, WebhookAttempt
from automations.tests.engine_factories import (
    SECRET,
    fast_retries,
    make_engine_automation,
    run_due_schedules,
    use_sync_q,
)
from automations.tests.servers import WebhookReceiver
from conftest import make_member
from members.services import member_deactivate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sync_q(monkeypatch, settings):
    use_sync_q(monkeypatch, settings)
    fast_retries(settings)


@pytest.fixture
def receiver():
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture
def deactivate(django_capture_on_commit_callbacks):
    def run(member=None):
        member = member or make_member(full_name="Jordan Rivera")
        with django_capture_on_commit_callbacks(execute=True):
            member_deactivate(member=member, actor=None, reason="Last working day")
        return member

    return run


def delivery() -> ActionLog:
    return ActionLog.objects.get(action_kind="webhook")


def test_golden_vector_of_the_standard_webhooks_spec():
    signature = Webhook(SECRET).sign(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        datetime.fromtimestamp(1614265330, tz=UTC),
        '{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_delivery_is_signed_and_carries_the_event(receiver, deactivate):
    automation = make_engine_automation(
        webhook_url=receiver.url("/hooks/leavers?source=assetsonar"),
        headers={
            "Authorization": "Bearer receiver-token",
            "X-Team": "it",
            "Webhook-Signature": "v1,forged",
            "content-type": "text/plain",
        },
    )

    member = deactivate()

    (request,) = receiver.requests
    assert (request.method, request.path) == ("POST", "/hooks/leavers?source=assetsonar")
    payload = Webhook(SECRET).verify(request.body, request.headers)
    assert payload["type"] == "member.deactivated"
    assert payload["data"]["member"]["id"] == member.pk
    assert payload["data"]["member"]["deactivation_reason"] == "Last working day"
    assert payload["data"]["automation"]["name"] == automation.name
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("AssetSonar-Webhooks/")
    assert headers["authorization"] == "Bearer receiver-token"
    assert headers["x-team"] == "it"
    assert headers["host"] == f"127.0.0.1:{receiver.port}"
    assert headers["webhook-id"] == webhook_id_for(delivery().key)
    assert abs(int(headers["webhook-timestamp"]) - timezone.now().timestamp()) < 60

    log = delivery()
    assert (log.status, log.attempts) == (ActionLog.Status.SUCCEEDED, 1)
    assert log.insight == "Delivered: the endpoint answered 200."
    (attempt,) = log.webhook_attempts.all()
    assert (attempt.number, attempt.status_code, attempt.response_excerpt) == (1, 200, "ok")
    assert attempt.request_headers["Authorization"] == "[redacted]"
    assert attempt.request_headers["webhook-signature"] == "[redacted]"
    assert attempt.request_headers["X-Team"] == "it"
    assert "receiver-token" not in json.dumps(attempt.request_headers)


def test_put_method_is_used_when_chosen(receiver, deactivate):
    make_engine_automation(webhook_url=receiver.url(), method="PUT")
    deactivate()
    assert receiver.requests[0].method == "PUT"


def test_tampered_body_fails_verification(receiver, deactivate):
    from standardwebhooks.webhooks import WebhookVerificationError

    make_engine_automation(webhook_url=receiver.url())
    deactivate()
    request = receiver.requests[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request.body.replace(b"Jordan", b"Jordon"), request.headers)


def test_5xx_is_retried_through_the_scheduler_with_the_same_webhook_id(receiver, deactivate):
    receiver.answer(503, times=2)
    make_engine_automation(webhook_url=receiver.url())

    deactivate()

    log = delivery()
    assert (log.status, log.attempts) == (ActionLog.Status.RETRYING, 1)
    assert log.insight.startswith("The endpoint answered 503. Attempt 1 of 7")
    schedule = Schedule.objects.get(func="automations.tasks.retry_action")
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.ONCE, -1)
    assert Execution.objects.get().status == Execution.Status.RUNNING

    assert run_due_schedules() == 2

    log.refresh_from_db()
    assert (log.status, log.attempts) == (ActionLog.Status.SUCCEEDED, 3)
    assert [a.status_code for a in log.webhook_attempts.all()] == [503, 503, 200]
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1 and len(receiver.requests) == 3
    for request in receiver.requests:
        Webhook(SECRET).verify(request.body, request.headers)
    assert Execution.objects.get().status == Execution.Status.SUCCEEDED
    assert not Schedule.objects.filter(func="automations.tasks.retry_action").exists()


@pytest.mark.parametrize("status", [408, 429, 500, 502])
def test_retryable_statuses(receiver, deactivate, status):
    receiver.answer(status)
    make_engine_automation(webhook_url=receiver.url())
    deactivate()
    assert delivery().status == ActionLog.Status.RETRYING
    run_due_schedules()
    assert delivery().status == ActionLog.Status.SUCCEEDED


def test_gives_up_after_seven_attempts_with_a_plain_insight(receiver, deactivate):
    receiver.answer(503, times=10)
    make_engine_automation(webhook_url=receiver.url())

    deactivate()
    run_due_schedules()

    log = delivery()
    assert (log.status, log.attempts) == (ActionLog.Status.FAILED, 7)
    assert log.insight.startswith("Webhook endpoint answered 503 on 7 attempts over ")
    assert log.insight.endswith("Check that the receiver is up, then use “Retry failed actions”.")
    assert len(receiver.requests) == 7
    execution = Execution.objects.get()
    assert execution.status == Execution.Status.FAILED
    assert execution.insight == log.insight


def test_exhausted_insight_says_how_long_it_tried(receiver, deactivate):
    receiver.answer(503, times=10)
    make_engine_automation(webhook_url=receiver.url())
    deactivate()
    run_due_schedules()
    log = delivery()
    # As if the seven attempts had been spread over the real backoff (about five hours).
    start = timezone.now() - timedelta(hours=5)
    for attempt, offset in zip(
        log.webhook_attempts.all(), (0, 30, 150, 750, 2550, 6150, 16950), strict=True
    ):
        WebhookAttempt.objects.filter(pk=attempt.pk).update(at=start + timedelta(seconds=offset))
    from automations.actions.webhook import _exhausted_insight

    assert _exhausted_insight(log).startswith(
        "Webhook endpoint answered 503 on 7 attempts over 5 hours."
    )


def test_retry_after_is_honoured_up_to_an_hour(receiver, deactivate, settings):
    receiver.answer(429, headers={"Retry-After": "120"})
    make_engine_automation(webhook_url=receiver.url())
    deactivate()
    log = delivery()
    wait = (log.next_attempt_at - timezone.now()).total_seconds()
    assert 110 < wait <= 121

    log.status = ActionLog.Status.PENDING
    log.save()
    receiver.answer(503, headers={"Retry-After": "86400"})
    from automations import tasks

    tasks.retry_action(log.pk)
    log.refresh_from_db()
    wait = (log.next_attempt_at - timezone.now()).total_seconds()
    assert 3590 < wait <= 3601


def test_default_backoff_is_exponential_with_jitter(settings):
    del settings.WEBHOOK_RETRY_DELAYS
    log = ActionLog(action_kind="webhook", attempts=1, detail={})
    waits = []
    for attempts in range(1, 8):
        log.attempts = attempts
        when = common.next_retry_at(log)
        waits.append(None if when is None else (when - timezone.now()).total_seconds())
    assert waits[-1] is None  # seven attempts in all
    for wait, nominal in zip(waits[:-1], (30, 120, 600, 1800, 3600, 10800), strict=True):
        assert nominal - 1 <= wait <= nominal * (1 + common.JITTER) + 1


def test_410_disables_the_webhook(receiver, deactivate):
    receiver.answer(410, times=5)
    automation = make_engine_automation(webhook_url=receiver.url())

    deactivate()

    log = delivery()
    assert (log.status, log.attempts) == (ActionLog.Status.FAILED, 1)
    assert "410 Gone" in log.insight and "switched off" in log.insight
    action = Action.objects.get(automation=automation)
    assert action.disabled_at is not None
    assert not Schedule.objects.filter(func="automations.tasks.retry_action").exists()

    deactivate()  # the next leaver: the webhook stays off

    assert len(receiver.requests) == 1
    skipped = ActionLog.objects.filter(action_kind="webhook").latest("pk")
    assert skipped.status == ActionLog.Status.SKIPPED
    when = timezone.localtime(action.disabled_at)
    assert skipped.insight == (
        f"Webhook disabled on {when.day} {when:%b %H:%M} after the receiver answered 410 Gone; "
        "re-enable it in the automation."
    )
    # Not sent is not done: the second leaver's execution is failed, with the reason.
    assert skipped.execution.status == Execution.Status.FAILED
    assert skipped.execution.insight == skipped.insight


@pytest.mark.parametrize(
    ("status", "insight"),
    [
        (401, "The endpoint refused the request (HTTP 401): check the authorization header"),
        (403, "The endpoint refused the request (HTTP 403): check the authorization header"),
        (404, "The endpoint answered 404 Not Found: check the webhook URL"),
        (422, "The endpoint rejected the request (HTTP 422): bad field."),
    ],
)
def test_other_4xx_are_final(receiver, deactivate, status, insight):
    receiver.answer(status, body=b"bad field")
    make_engine_automation(webhook_url=receiver.url())

    deactivate()

    log = delivery()
    assert (log.status, log.attempts) == (ActionLog.Status.FAILED, 1)
    assert log.insight.startswith(insight)
    assert not Schedule.objects.filter(func="automations.tasks.retry_action").exists()
    assert len(receiver.requests) == 1


def test_redirects_are_not_followed(receiver, deactivate):
    receiver.answer(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    make_engine_automation(webhook_url=receiver.url())

    deactivate()

    log = delivery()
    assert log.status == ActionLog.Status.FAILED
    assert "do not follow redirects" in log.insight
    assert len(receiver.requests) == 1


def test_a_hanging_receiver_times_out_and_is_retried(receiver, deactivate, settings):
    settings.WEBHOOK_READ_TIMEOUT = 0.3
    receiver.hang_seconds = 2
    receiver.hang()
    make_engine_automation(webhook_url=receiver.url())

    deactivate()

    log = delivery()
    assert log.status == ActionLog.Status.RETRYING
    (attempt,) = log.webhook_attempts.all()
    assert attempt.status_code is None
    assert attempt.error == "The endpoint did not answer within 0.3 s."
    assert attempt.duration_ms < 2000
    run_due_schedules()
    assert delivery().status == ActionLog.Status.SUCCEEDED


def test_a_dropped_connection_is_retried(receiver, deactivate):
    receiver.drop()
    make_engine_automation(webhook_url=receiver.url())

    deactivate()

    (attempt,) = delivery().webhook_attempts.all()
    assert attempt.error == "The endpoint closed the connection without answering."
    run_due_schedules()
    assert delivery().status == ActionLog.Status.SUCCEEDED
    assert len(receiver.requests) == 2


def test_nothing_listening_is_retried(deactivate):
    with WebhookReceiver() as gone:
        url = gone.url()
    make_engine_automation(webhook_url=url)

    deactivate()

    log = delivery()
    assert log.status == ActionLog.Status.RETRYING
    assert log.webhook_attempts.get().error.startswith("The endpoint refused the connection")


def test_response_excerpt_is_at_most_1_kb(receiver, deactivate):
    receiver.answer(200, body=b"x" * 5000)
    make_engine_automation(webhook_url=receiver.url())
    deactivate()
    assert len(delivery().webhook_attempts.get().response_excerpt) == 1024


def test_response_headers_are_redacted(receiver, deactivate):
    receiver.answer(200, headers={"Set-Cookie": "session=abc", "X-Request-Id": "r-1"})
    make_engine_automation(webhook_url=receiver.url())
    deactivate()
    headers = delivery().webhook_attempts.get().response_headers
    assert headers["Set-Cookie"] == "[redacted]"
    assert headers["X-Request-Id"] == "r-1"


def test_a_webhook_without_a_secret_fails_with_a_remedy(receiver, deactivate):
    automation = make_engine_automation(webhook_url=receiver.url())
    Action.objects.filter(automation=automation).update(secret_encrypted="")
    deactivate()
    log = delivery()
    assert log.status == ActionLog.Status.FAILED
    assert "no signing secret" in log.insight
    assert receiver.requests == []


def test_an_interrupted_attempt_is_recorded_and_taken_over(receiver, deactivate):
    """A worker died during attempt 1 (the log is running, its lease over): the next run records
    the lost attempt and tries again with the same webhook-id."""
    receiver.answer(503)
    make_engine_automation(webhook_url=receiver.url())
    deactivate()
    log = delivery()
    ActionLog.objects.filter(pk=log.pk).update(
        status=ActionLog.Status.RUNNING, next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    WebhookAttempt.objects.filter(log=log).delete()

    from automations import tasks

    tasks.retry_action(log.pk)

    log.refresh_from_db()
    assert (log.status, log.attempts) == (ActionLog.Status.SUCCEEDED, 2)
    first, second = log.webhook_attempts.all()
    assert first.error.startswith("No answer recorded: the worker stopped")
    assert second.status_code == 200
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1


def test_a_running_attempt_within_its_lease_is_left_alone(receiver, deactivate):
    receiver.answer(503)
    make_engine_automation(webhook_url=receiver.url())
    deactivate()
    log = delivery()
    ActionLog.objects.filter(pk=log.pk).update(
        status=ActionLog.Status.RUNNING, next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    from automations import tasks

    tasks.retry_action(log.pk)

    assert len(receiver.requests) == 1
    assert delivery().attempts == 1
