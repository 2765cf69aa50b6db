from django.apps import AppConfig

from intent_project import wakeups


class ProjectionsConfig(AppConfig):
    name = "projections_app"
    verbose_name = "Projections and read models"

    def ready(self) -> None:
        # Imported here: this module is imported before the models exist, these need them.
        from projections_app import checks  # noqa: F401  (registers the projection system checks)
        from projections_app.tasks import ReadSide

        wakeups.connect_read_side(ReadSide())
