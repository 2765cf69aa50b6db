"""Our PostgreSQL backend: django-tenants' wrapper with two round trips per request less."""
