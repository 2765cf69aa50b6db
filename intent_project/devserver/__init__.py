"""`python manage.py runserver` for this project (listed before django.contrib.staticfiles in
INSTALLED_APPS, so that its command is the one Django runs; see management/commands)."""
