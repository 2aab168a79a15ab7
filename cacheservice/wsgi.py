"""WSGI entry point for gunicorn: ``cacheservice.wsgi:app``."""

from cacheservice import create_app

app = create_app()
