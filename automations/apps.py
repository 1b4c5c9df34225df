from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    name = "automations"

    def ready(self) -> None:
        # The action kinds register themselves and their system check (automations.E001).
        from automations import actions, signals  # noqa: F401 - connects the member trigger
        from automations.selectors import automations_planned
        from members import selectors as member_selectors

        # The upcoming offboardings list shows what would run; members/ asks through this hook
        # instead of importing from automations/.
        if automations_planned not in member_selectors.PLANNED_RUNS:
            member_selectors.PLANNED_RUNS.append(automations_planned)
