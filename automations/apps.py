from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    name = "automations"

    def ready(self) -> None:
        # The action kinds register themselves and their system check (automations.E001).
        from automations import actions, signals  # noqa: F401 - connects the member trigger
