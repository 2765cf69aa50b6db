from django.apps import AppConfig


class CommandsConfig(AppConfig):
    name = "commands_app"
    verbose_name = "Commands"

    def ready(self) -> None:
        # Imported here: this module is imported before the models exist, the checks need them.
        from commands_app import checks  # noqa: F401  (registers the registry system checks)
