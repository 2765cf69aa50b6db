import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intent_project.settings")
application = get_wsgi_application()

from intent_project import heap  # noqa: E402 (grouped with the line that uses it)

heap.settle()  # what this process loaded to serve stays out of the collector's walks
