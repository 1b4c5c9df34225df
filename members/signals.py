"""Receivers of the members app. The deactivation trigger lives in automations/signals.py."""
