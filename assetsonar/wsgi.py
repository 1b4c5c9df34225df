"""WSGI entry point (waitress, gunicorn, ...)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assetsonar.settings")
application = get_wsgi_application()
