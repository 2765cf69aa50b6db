from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "intent_project.tenants"
    label = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from intent_project import tracing
        from intent_project.tenants.lookups import connect_invalidation

        connect_invalidation()
        # Before Django builds the middleware chain: the Django instrumentation adds its own.
        tracing.configure()
