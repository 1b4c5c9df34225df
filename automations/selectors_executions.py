"""Reads for the execution log: the Executions list, one execution with its action logs, and the
automated actions taken for one member. Each function fixes its joins so a page's query count
does not grow with the number of rows."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404

from automations.models import (
    ActionLog,
    Automation,
    Event,
    Execution,
    WebhookAttempt,
    action_order_key,
)
from members.models import Member

FINISHED = (
    Execution.Status.SUCCEEDED,
    Execution.Status.PARTIALLY_FAILED,
    Execution.Status.FAILED,
)
RETRYABLE = (Execution.Status.FAILED, Execution.Status.PARTIALLY_FAILED)
UNFINISHED_EVENTS = (Event.Status.PENDING, Event.Status.PROCESSING)
UNFINISHED_EXECUTIONS = (Execution.Status.PENDING, Execution.Status.RUNNING)
MEMBER_PANEL_LIMIT = 50
# Executions whose logs the panel reads: a member is offboarded a few times at most, so the
# newest 200 hold far more than the panel's 50 rows.
MEMBER_PANEL_EXECUTIONS = 200


EXECUTION_ORDERING = ["-created_at", "-id"]  # the index execution_newest


def execution_list() -> QuerySet[Execution]:
    """Every execution, newest first, with its member. The action counts are read for one page
    at a time (execution_attach_counts): counted in this query they would aggregate the whole
    log (10 million rows) before the page is cut."""
    return Execution.objects.select_related("member").order_by(*EXECUTION_ORDERING)


OPEN_LOG_STATUSES = (ActionLog.Status.PENDING, ActionLog.Status.RUNNING, ActionLog.Status.RETRYING)


def execution_attach_counts(executions: list[Execution]) -> list[Execution]:
    """Set succeeded_count, failed_count, skipped_count, open_count and scheduled_count (delayed
    actions waiting for their time) on the executions of one page: one grouped query over their
    logs (the execution_id index)."""
    counts: dict[int, dict[str, int]] = {e.pk: {} for e in executions}
    if counts:
        rows = (
            ActionLog.objects.filter(execution_id__in=counts)
            .order_by()
            .values_list("execution_id", "status")
            .annotate(n=Count("pk"))
        )
        for execution_id, status, n in rows:
            counts[execution_id][status] = n
    for execution in executions:
        by_status = counts[execution.pk]
        execution.succeeded_count = by_status.get(ActionLog.Status.SUCCEEDED, 0)
        execution.failed_count = by_status.get(ActionLog.Status.FAILED, 0)
        execution.skipped_count = by_status.get(ActionLog.Status.SKIPPED, 0)
        execution.open_count = sum(by_status.get(s, 0) for s in OPEN_LOG_STATUSES)
        execution.scheduled_count = by_status.get(ActionLog.Status.SCHEDULED, 0)
    return executions


class ExecutionFilter(django_filters.FilterSet):
    """The Executions view's filters: automation, status, member (name or email) and the day
    range the execution was recorded in."""

    automation = django_filters.ModelChoiceFilter(
        queryset=Automation.objects.only("id", "name").order_by("name", "id"),
        empty_label="Any automation",
    )
    status = django_filters.ChoiceFilter(choices=Execution.Status.choices, empty_label="Any status")
    member = django_filters.CharFilter(
        method="filter_member",
        label="Member",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name or email"}),
    )
    member_id = django_filters.NumberFilter(field_name="member_id", widget=forms.HiddenInput)
    date_from = django_filters.DateFilter(
        field_name="created_at__date",
        lookup_expr="gte",
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = django_filters.DateFilter(
        field_name="created_at__date",
        lookup_expr="lte",
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    class Meta:
        model = Execution
        fields: list[str] = []

    def filter_member(
        self, queryset: QuerySet[Execution], name: str, value: str
    ) -> QuerySet[Execution]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(member__full_name__icontains=value) | Q(member__email__icontains=value)
        )


def execution_get(pk: int) -> Execution:
    """One execution with what its header shows, or 404."""
    return get_object_or_404(
        Execution.objects.select_related("member", "automation", "event", "event__actor"),
        pk=pk,
    )


def execution_logs(execution: Execution) -> list[ActionLog]:
    """The execution's action logs in their actions' order (the builder's positions), each action's
    targets in the order they were recorded, each with its target, its MDM command and its
    webhook attempts (two queries whatever the number of logs)."""
    return list(
        ActionLog.objects.filter(execution=execution)
        .select_related(
            "asset",
            "entitlement",
            "entitlement__license",
            "mdm_command",
            "mdm_command__connection",
        )
        .prefetch_related(
            Prefetch("webhook_attempts", queryset=WebhookAttempt.objects.order_by("number"))
        )
        .order_by(*action_order_key(), "id")
    )


def member_action_logs(
    member: Member, limit: int = MEMBER_PANEL_LIMIT
) -> tuple[list[ActionLog], bool]:
    """The newest `limit` actions taken for a member, newest execution first and each
    execution's actions in their order (the builder's positions), so the panel can show one heading
    per execution; and whether there are more (one row more is read instead of counting)."""
    # The member's executions first (index member, -created_at), then their logs by execution
    # id: as a join the planner may walk the whole log newest-first looking for this member's
    # rows, which grows with the log (10 million rows) rather than with the member's history.
    executions = list(
        Execution.objects.filter(member=member)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)[:MEMBER_PANEL_EXECUTIONS]
    )
    logs = list(
        ActionLog.objects.filter(execution_id__in=executions)
        .select_related("execution", "asset", "entitlement__license")
        .order_by("-execution__created_at", "-execution_id", *action_order_key(), "id")[: limit + 1]
    )
    return logs[:limit], len(logs) > limit


def member_action_summary(member: Member) -> dict:
    """Whether work for the member is still under way: an event no task has finished, or an
    execution still pending or running. One query."""
    row = (
        Member.objects.filter(pk=member.pk)
        .annotate(
            busy_event=Exists(
                Event.objects.filter(member=OuterRef("pk"), status__in=UNFINISHED_EVENTS)
            ),
            busy_execution=Exists(
                Execution.objects.filter(member=OuterRef("pk"), status__in=UNFINISHED_EXECUTIONS)
            ),
        )
        .values("busy_event", "busy_execution")
        .first()
    ) or {"busy_event": False, "busy_execution": False}
    return {"in_progress": row["busy_event"] or row["busy_execution"]}
