from django.apps import AppConfig


class AssetSonarConfig(AppConfig):
    """The project package is also the home of cross-cutting models: the audit log and settings."""

    name = "assetsonar"
    verbose_name = "Portal"

    def ready(self) -> None:
        from assetsonar import signals  # noqa: F401 - connects the audit receivers
