from django.apps import AppConfig


class MembersConfig(AppConfig):
    name = "members"

    def ready(self) -> None:
        from members import signals  # noqa: F401 - connects the receivers listed there
