"""Metrics: in-process aggregation, the flush to Postgres, statistics, health, Prometheus.

Nothing here imports Celery; the tasks in ``workers/`` call these functions.
"""
