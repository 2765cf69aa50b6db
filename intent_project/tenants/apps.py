from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "intent_project.tenants"
    label = "tenants"
    verbose_name = "Tenants"
