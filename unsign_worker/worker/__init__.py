"""The worker: the Celery app and its tasks, the per-job processor, the retry policy, the
sweeper, the inbox thread and the success-hook runner."""
