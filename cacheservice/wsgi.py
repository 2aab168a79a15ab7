"""WSGI entry point for gunicorn: ``cacheservice.wsgi:app``."""

import logging

from cacheservice import create_app
from cacheservice.config import Settings

settings = Settings.from_env()
# gunicorn configures only its own loggers; the service's go to stderr beside them.
logging.basicConfig(
    level=settings.log_level,
    format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
)
app = create_app(settings)
