"""The Celery application and its beat schedule: ``celery -A workers.celery_app worker|beat``."""

from __future__ import annotations

from celery import Celery

from cacheservice.config import Settings

settings = Settings.from_env()

app = Celery("cacheservice", broker=settings.celery_broker_url, include=["workers.tasks"])
app.conf.update(
    # Tasks are idempotent (exactly-once effect by batch id), so a task whose worker died is
    # simply run again: acknowledge after running, and requeue when the worker is lost.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # When the broker connection drops (Redis restarted), a running task could not be
    # acknowledged anyway: cancel it so it is redelivered, as Celery 6 will by default. The
    # tasks are idempotent, and choosing it here also silences the warning Celery otherwise
    # logs at every broker reconnection.
    worker_cancel_long_running_tasks_on_connection_loss=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    # A hung task is killed well before the broker would hand its message to another worker.
    task_time_limit=max(120, settings.task_lock_seconds * 2),
    broker_transport_options={"visibility_timeout": 600},
    broker_connection_retry_on_startup=True,
    timezone="UTC",
    beat_schedule_filename=settings.beat_schedule_file,
    beat_schedule={
        "flush-entry-stats": {
            "task": "cacheservice.flush_entry_stats",
            "schedule": settings.flush_interval,
        },
        "flush-metrics": {
            "task": "cacheservice.flush_metrics",
            "schedule": settings.flush_interval,
        },
        "flush-session-access": {
            "task": "cacheservice.flush_session_access",
            "schedule": settings.flush_interval,
        },
        "cleanup-sessions": {
            "task": "cacheservice.cleanup_sessions",
            "schedule": settings.prune_interval,
        },
        "prune-indexes": {
            "task": "cacheservice.prune_indexes",
            "schedule": settings.prune_interval,
        },
        "probe-health": {"task": "cacheservice.probe_health", "schedule": settings.probe_interval},
        "sample-memory": {
            "task": "cacheservice.sample_memory",
            "schedule": settings.memory_sample_interval,
        },
    },
)
