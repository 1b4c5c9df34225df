"""Placeholder until this module is built (see the open issue); every view answers 404."""

from django.http import Http404


def execution_list(request, pk=None):
    raise Http404("Not built yet.")


def execution_detail(request, pk=None):
    raise Http404("Not built yet.")


def execution_retry(request, pk=None):
    raise Http404("Not built yet.")


def member_actions_panel(request, pk=None):
    raise Http404("Not built yet.")
