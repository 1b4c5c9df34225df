from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    name = "automations"

    def ready(self) -> None:
        # The action kinds register themselves and their system check (automations.E001).
        from automations import actions, signals  # noqa: F401 - connects the member trigger
        from automations.selectors_offboarding import offboarding_plans
        from members import selectors as member_selectors

        # The Upcoming offboardings page says what will run for each leaver and when;
        # members/ asks through this hook instead of importing from automations/.
        if offboarding_plans not in member_selectors.OFFBOARDING_PLANS:
            member_selectors.OFFBOARDING_PLANS.append(offboarding_plans)
