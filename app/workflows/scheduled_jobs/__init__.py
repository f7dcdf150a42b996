"""The scheduled jobs: `workflow.py` orders each job's steps, the other modules do their work
(`cleanup.py`, `rates.py`, `notices.py`, `analytics.py`)."""

from app.workflows.scheduled_jobs.workflow import (
    JOB_WORKFLOWS,
    JobInput,
    analytics_refresh,
    exchange_rate_refresh,
    intake_reminders,
    notification_digest,
    stale_session_cleanup,
)

__all__ = [
    "JOB_WORKFLOWS",
    "JobInput",
    "analytics_refresh",
    "exchange_rate_refresh",
    "intake_reminders",
    "notification_digest",
    "stale_session_cleanup",
]
