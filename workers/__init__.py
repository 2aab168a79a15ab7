"""Celery worker and beat processes (the metrics pipeline fills this package)."""
