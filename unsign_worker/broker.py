"""Broker-dependent Celery settings, shared by the workers (``celeryconfig``) and the producers.

Pure and dependency-free, so a producer can import it without the worker's code. With RabbitMQ,
producers and workers must declare the queues with the same arguments, or RabbitMQ refuses the
second declaration (``PRECONDITION_FAILED``): both take them from :func:`amqp_config`.
"""

from __future__ import annotations

from typing import Any

#: URL schemes of an AMQP (RabbitMQ) broker.
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def is_amqp(url: str) -> bool:
    """True for a RabbitMQ (AMQP) broker URL."""
    return url.split("://", 1)[0].lower() in AMQP_SCHEMES


def amqp_config() -> dict[str, Any]:
    """Celery settings for a RabbitMQ broker.

    RabbitMQ acknowledges for real, so none of the Redis transport options apply (kombu's
    ``global_keyprefix`` and ``visibility_timeout`` are Redis-only); quorum queues are replicated
    and durable; publisher confirms make a send fail loudly instead of vanishing; countdown
    retries on quorum queues use RabbitMQ's native delayed delivery, which routes only through
    topic exchanges (and counts whole seconds: keep countdowns >= 1 s).
    """
    return {"broker_transport_options": {"confirm_publish": True},
            "task_default_queue_type": "quorum",
            "task_create_missing_queue_type": "quorum",
            "task_default_exchange_type": "topic",
            "task_create_missing_queue_exchange_type": "topic",
            "worker_detect_quorum_queues": True}
