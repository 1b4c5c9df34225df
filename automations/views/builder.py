"""Placeholder until this module is built (see the open issue); every view answers 404."""

from django.http import Http404


def automation_list(request, pk=None):
    raise Http404("Not built yet.")


def automation_create(request, pk=None):
    raise Http404("Not built yet.")


def automation_detail(request, pk=None):
    raise Http404("Not built yet.")


def automation_edit(request, pk=None):
    raise Http404("Not built yet.")


def automation_toggle(request, pk=None):
    raise Http404("Not built yet.")


def automation_duplicate(request, pk=None):
    raise Http404("Not built yet.")


def automation_delete(request, pk=None):
    raise Http404("Not built yet.")


def automation_rotate_secret(request, pk=None):
    raise Http404("Not built yet.")


def builder_trigger_events(request, pk=None):
    raise Http404("Not built yet.")


def builder_condition_row(request, pk=None):
    raise Http404("Not built yet.")


def builder_preview(request, pk=None):
    raise Http404("Not built yet.")
