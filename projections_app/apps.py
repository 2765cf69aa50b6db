from django.apps import AppConfig


class ProjectionsConfig(AppConfig):
    name = "projections_app"
    verbose_name = "Projections and read models"

    def ready(self) -> None:
        from projections_app import checks  # noqa: F401  (registers the projection system checks)
