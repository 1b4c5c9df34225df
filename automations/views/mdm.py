"""Placeholder until this module is built (see the open issue); every view answers 404."""

from django.http import Http404


def mdm_command_pin(request, pk=None):
    raise Http404("Not built yet.")
