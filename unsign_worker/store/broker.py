"""Broker-dependent Celery settings, shared by the workers (``celeryconfig``) and the producers.

Pure and dependency-free, so a producer can import it without the worker's code. With RabbitMQ,
producers and workers must declare the queues with the same arguments, or RabbitMQ refuses the
second declaration (``PRECONDITION_FAILED``): both take them from :func:`amqp_config`.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from unsign_worker.protocol.exceptions import ConfigError

#: URL schemes of an AMQP (RabbitMQ) broker.
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
#: Query parameters of a ``rediss://`` URL naming certificate files (the CA, a client cert).
TLS_FILE_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


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


def redis_tls_options(url: str) -> dict[str, Any] | None:
    """``broker_use_ssl`` for a ``rediss://`` broker: certificates always verified.

    Without it kombu falls back to ``ssl_cert_reqs=CERT_NONE`` for a bare ``rediss://`` URL
    (it only logs a warning), which would accept any certificate. The CA and client
    certificate files may be given in the URL's query (``?ssl_ca_certs=/etc/redis/ca.pem``);
    the system's trust store is used otherwise. None for any other scheme.
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return None
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    for name, value in parse_qsl(parts.query):
        if name in TLS_FILE_PARAMS and value:
            options[name] = value
    return options


#: Values of ``ssl_cert_reqs`` in a ``rediss://`` URL that keep verification on.
_VERIFYING = ("required", "cert_required")
_TRUE = ("1", "true", "yes", "on")


def check_store_url(url: str, *, name: str) -> None:
    """Raise ConfigError if a ``rediss://`` URL switches certificate checks off.

    ``rediss://`` always verifies the server's certificate and host name (against the system's
    trust store, or the CA named by ``?ssl_ca_certs=``); ``ssl_cert_reqs=none|optional`` or
    ``ssl_check_hostname=false`` in the URL would quietly accept an impostor. The message
    never repeats the URL, which may carry a password.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"{name}: not a well-formed URL") from None
    if parts.scheme in ("redis+sentinel", "rediss+sentinel"):
        from unsign_worker.store.sentinel import parse_sentinel_url

        parse_sentinel_url(url, name=name)  # raises ConfigError naming the rule
        return
    if parts.scheme != "rediss":
        return
    for key, value in parse_qsl(parts.query):
        if key == "ssl_cert_reqs" and value.strip().lower() not in _VERIFYING:
            raise ConfigError(f"{name}: ssl_cert_reqs={value} would not verify the Redis "
                              "server's certificate; remove it (rediss:// always verifies; "
                              "name a private CA with ssl_ca_certs=)")
        if key == "ssl_check_hostname" and value.strip().lower() not in _TRUE:
            raise ConfigError(f"{name}: ssl_check_hostname={value} would accept a certificate "
                              "issued to another host; remove it")
