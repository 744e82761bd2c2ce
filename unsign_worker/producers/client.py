"""The Python client for other applications: enqueue an unsign as a producer, read its status.

An application runs as one producer (``unsign-worker producer add crm``, and the Redis user
``unsign-worker acl --producer crm`` prints): it may add entries to its own stream
``P inbox:<name>`` and read its own keys ``P producer:<name>:*``, nothing else. The client
checks each job before it leaves the application (a bad job raises
:class:`~unsign_worker.protocol.exceptions.ValidationError` here, naming field and rule), adds
one entry and returns the entry's id, the *request id*; a worker then validates the entry
again, gives its job a random id and records it. The client reads the job's state from the
producer's own view of it, never its parameters. Needs only ``redis`` and the pure modules; it
never holds a key or secret, and never has a worker's rights::

    from unsign_worker.producers.client import UnsignClient

    with UnsignClient("redis://crm:<password>@127.0.0.1:6379/0", producer="crm") as client:
        request = client.enqueue(customer_code="C00000000042", reference="order-42")
        print(client.wait(request, timeout=60).state)     # unsigned

The same ``reference`` enqueued again names the same job; a reference already bound to a job
with other parameters makes the new request its own job, rejected ``REFERENCE_CONFLICT``
(:meth:`UnsignClient.wait` returns it). References are this producer's own: another producer's
``order-42`` is another job.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

from unsign_worker.producers.job_input import reference_errors, validated_params
from unsign_worker.producers.job_status import JobStatus, wait_for_end
from unsign_worker.protocol.exceptions import ConfigError, FieldError, UnsignError, ValidationError
from unsign_worker.protocol.param_rules import CHARSETS
from unsign_worker.protocol.verification import require_public_key_in_env
from unsign_worker.store.broker import check_store_url
from unsign_worker.store.job import JOB_ID_RE
from unsign_worker.store.keys import DEFAULT_KEY_PREFIX, Keys, producer_name_error
from unsign_worker.store.producer_registry import REFUSED_MAXLEN
from unsign_worker.store.sentinel import connect
from unsign_worker.store.states import JobState

__all__ = ["BacklogFullError", "JobStatus", "UnsignClient", "reference_errors",
           "validated_params"]


DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: Seconds between two looks at a job's state in :meth:`UnsignClient.wait`.
POLL_INTERVAL_SECONDS = 0.2
#: The producer's limits are read again after this many seconds.
SETTINGS_TTL_SECONDS = 30.0
#: A request id: the id Redis gave the entry.
REQUEST_ID_RE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
#: The state of a request whose entry no worker has taken yet.
SUBMITTED = "submitted"
#: Codes of a request refused unread (``P producer:<name>:refused``), by reason.
REFUSED_CODES = {"max_size": "ENTRY_TOO_LARGE", "max_pending": "BACKLOG_FULL"}


class BacklogFullError(UnsignError):
    """The producer's stream holds as many entries as its cap allows: the workers are behind
    or stopped. Nothing was added; try again later."""


class UnsignClient:
    """Enqueue unsign jobs as one producer and read their outcome, from any Python
    application."""

    def __init__(self, redis_url: str = DEFAULT_URL, *, producer: str,
                 key_prefix: str = DEFAULT_KEY_PREFIX, input_charset: str = "utf-8",
                 env: Mapping[str, str] | None = None) -> None:
        """``redis_url`` names the producer's own Redis user (``redis://crm:<password>@…``);
        ``key_prefix`` and ``input_charset`` must match the workers' ``UNSIGN_KEY_PREFIX`` and
        ``ALIPAY_INPUT_CHARSET``.

        Raises:
            ValueError: ``producer`` is not a producer name, or an unknown charset.
            ConfigError: ``env`` (default: the process environment) sets ``ALIPAY_SIGN_TYPE``
                to RSA or DSA without a usable ``ALIPAY_PUBLIC_KEY_FILE``, or a ``rediss://``
                URL turns certificate checks off.
        """
        require_public_key_in_env(env)
        if (error := producer_name_error(producer)) is not None:
            raise ValueError(f"producer: {error}")
        if input_charset.lower() not in CHARSETS:
            raise ValueError(f"input_charset: must be one of {', '.join(CHARSETS)}")
        check_store_url(redis_url, name="redis_url")  # the workers' rule for rediss:// URLs
        self.name = producer
        self.charset = input_charset.lower()
        self.keys = Keys(key_prefix)
        self.redis = connect(redis_url, socket_connect_timeout=5)
        self._stream = self.keys.inbox(producer)
        self._limits: tuple[int, int] | None = None
        self._limits_read_at = float("-inf")

    def __repr__(self) -> str:  # the URL carries a password: never shown
        return f"UnsignClient(producer={self.name!r}, key_prefix={self.keys.prefix!r})"

    def enqueue(self, *, customer_code: str = "", type_code: str = "",
                trans_account_out: str = "", biz_type: str = "", user_email: str = "",
                reference: str = "") -> str:
        """Check and enqueue one unsign; returns its request id (:meth:`status` and
        :meth:`wait` take it, or the job id a status shows).

        Raises:
            ValidationError: a parameter or the reference breaks a rule (names field and rule).
            BacklogFullError: the producer's stream is full (its ``max_pending``).
            ConfigError: the workers do not know this producer (``unsign-worker producer
                add``).
        """
        errors = reference_errors(reference)
        try:
            params: dict[str, Any] = validated_params(
                {"customer_code": customer_code, "type_code": type_code,
                 "trans_account_out": trans_account_out, "biz_type": biz_type,
                 "user_email": user_email}, charset=self.charset)
        except ValidationError as exc:
            errors = exc.errors + errors
        if errors:
            raise ValidationError(errors)
        if reference:
            params["reference"] = reference
        entry = {"job": json.dumps(params, ensure_ascii=False)}
        max_pending, max_bytes = self.limits()
        size = sum(len(k.encode()) + len(v.encode()) for k, v in entry.items())
        if size > max_bytes:
            raise ValidationError([FieldError("job", "max_size", f"the entry holds {size} "
                                              f"bytes; at most {max_bytes} are read")])
        waiting = self.redis.xlen(self._stream)
        if waiting >= max_pending:
            raise BacklogFullError(f"producer {self.name}: {waiting} entries are waiting, its "
                                   f"cap is {max_pending}; the workers are behind or stopped, "
                                   "try again later")
        entry_id = self.redis.xadd(self._stream, entry)
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def limits(self) -> tuple[int, int]:
        """``(max_pending, max_entry_bytes)`` of this producer, as the workers apply them
        (read again every :data:`SETTINGS_TTL_SECONDS`).

        Raises:
            ConfigError: the workers do not know this producer.
        """
        if self._limits is None or time.monotonic() - self._limits_read_at > SETTINGS_TTL_SECONDS:
            raw = self.redis.hmget(self.keys.producer_settings(self.name), "max_pending",
                                   "max_entry_bytes")
            if raw[0] is None or raw[1] is None:
                raise ConfigError(f"producer {self.name!r} is not known to the workers: an "
                                  f"operator adds it with `unsign-worker producer add "
                                  f"{self.name}` (and its Redis user with `unsign-worker acl "
                                  f"--producer {self.name}`)")
            self._limits = (int(raw[0]), int(raw[1]))
            self._limits_read_at = time.monotonic()
        return self._limits

    def find(self, reference: str) -> str | None:
        """The id of this producer's job bound to ``reference``, or None."""
        found = self.redis.get(self.keys.producer_ref(self.name, reference))
        return found.decode() if found else None

    def conflicts(self, reference: str) -> list[str]:
        """Ids of this producer's jobs refused ``REFERENCE_CONFLICT`` for ``reference`` (a
        request that named it with other parameters than the job :meth:`find` returns)."""
        members = self.redis.smembers(self.keys.producer_conflicts(self.name, reference))
        return sorted(m.decode() for m in members)

    def status(self, request_id: str) -> JobStatus | None:
        """The status of a request (its request id, or its job's id), or None if unknown (or
        expired). A request no worker has taken yet is ``submitted``; one refused unread is
        ``rejected`` with code ``ENTRY_TOO_LARGE`` or ``BACKLOG_FULL``."""
        if JOB_ID_RE.fullmatch(request_id):
            return self._job(request_id)
        if not REQUEST_ID_RE.fullmatch(request_id):
            raise ValueError(f"request id: {request_id[:40]!r} is neither a request id "
                             "(digits-digits) nor a job id (32 hex digits)")
        with self.redis.pipeline(transaction=True) as pipe:  # one moment: bound, or waiting
            pipe.get(self.keys.producer_entry(self.name, request_id))
            pipe.xrange(self._stream, request_id, request_id)
            bound, waiting = pipe.execute()
        if bound:
            found = self._job(bound.decode())
            if found is not None:
                return found
        if bound or waiting:
            return JobStatus(job_id=bound.decode() if bound else "", state=SUBMITTED)
        return self._refused(request_id)

    def _job(self, job_id: str) -> JobStatus | None:
        raw = self.redis.hgetall(self.keys.producer_job(self.name, job_id))
        return JobStatus.from_record(job_id, raw) if raw else None

    def _refused(self, request_id: str) -> JobStatus | None:
        """The request's refusal, if it is among the last ones (its refused stream)."""
        for _, fields in self.redis.xrevrange(self.keys.producer_refused(self.name),
                                              count=REFUSED_MAXLEN):
            if fields.get(b"entry", b"").decode() == request_id:
                reason = fields.get(b"reason", b"").decode()
                return JobStatus(job_id="", state=JobState.REJECTED.value,
                                 code=REFUSED_CODES.get(reason, reason.upper()),
                                 reason=fields.get(b"detail", b"").decode())
        return None

    def wait(self, request_id: str, timeout: float = 60.0) -> JobStatus:
        """Poll until the request's job is terminal; ``timeout`` in seconds.

        A Redis outage (restart, failover) is waited out within ``timeout``: logged once as
        "Redis unavailable since …, retrying", then polling carries on.

        Raises:
            TimeoutError: not terminal in time (the job goes on; wait again later), Redis
                included: still unavailable when the time was up.
            KeyError: no such request or job.
        """
        return wait_for_end(lambda: self.status(request_id),
                            what=f"request or job {request_id} of producer {self.name}",
                            timeout=timeout, poll_seconds=POLL_INTERVAL_SECONDS)

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> UnsignClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

