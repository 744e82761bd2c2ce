"""Enqueueing as the operator: ``unsign-worker enqueue``, with the operator's Redis rights.

The operator is trusted like a worker (its Redis user may write job records and the broker's
queues): a job's record and its entry in ``P intake`` are written in one round trip
(:mod:`unsign_worker.producers.admission`), and the workers take the stream's jobs in bulk
without validating them again. Its references live in ``P ref:`` (a producer's under its own
keys). An application never uses this: it runs as a producer
(:class:`~unsign_worker.producers.client.UnsignClient`).

A bad job raises :class:`~unsign_worker.protocol.exceptions.ValidationError` here; the same
``reference`` enqueued twice returns the same job; a reference bound to a job with other
parameters raises :class:`~unsign_worker.producers.admission.ReferenceConflictError`.
"""

from __future__ import annotations

from collections.abc import Mapping

from unsign_worker.producers.admission import ReferenceConflictError, submit
from unsign_worker.producers.job_input import reference_errors, validated_params
from unsign_worker.producers.job_status import JobStatus, wait_for_end
from unsign_worker.producers.producer import CONFLICT_CODE, Producer, producer_app
from unsign_worker.protocol.exceptions import FieldError, ValidationError
from unsign_worker.protocol.param_rules import CHARSETS
from unsign_worker.protocol.verification import require_public_key_in_env
from unsign_worker.store.broker import check_store_url
from unsign_worker.store.job import CAMPAIGN_ID_RE, Job, new_job_id
from unsign_worker.store.keys import DEFAULT_KEY_PREFIX, Keys
from unsign_worker.store.sentinel import connect

DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: Seconds between two looks at a job's state in :meth:`OperatorClient.wait`.
POLL_INTERVAL_SECONDS = 0.2


class OperatorClient:
    """Enqueue unsign jobs with the operator's Redis rights and read their outcome."""

    def __init__(self, *, broker_url: str = DEFAULT_URL, redis_url: str | None = None,
                 key_prefix: str = DEFAULT_KEY_PREFIX, input_charset: str = "utf-8",
                 env: Mapping[str, str] | None = None) -> None:
        """``redis_url`` defaults to ``broker_url``; ``key_prefix`` and ``input_charset`` must
        match the workers' ``UNSIGN_KEY_PREFIX`` and ``ALIPAY_INPUT_CHARSET``; both URLs need
        the operator's (or a worker's) Redis user.

        Raises:
            ConfigError: ``env`` (default: the process environment) sets ``ALIPAY_SIGN_TYPE``
                to RSA or DSA without a usable ``ALIPAY_PUBLIC_KEY_FILE``: a deployment that
                could not verify the gateway's answers is refused here too.
        """
        require_public_key_in_env(env)
        if input_charset.lower() not in CHARSETS:
            raise ValueError(f"input_charset: must be one of {', '.join(CHARSETS)}")
        # the workers' own rule: a rediss:// URL that turns verification off is refused
        check_store_url(broker_url, name="broker_url")
        check_store_url(redis_url or broker_url, name="redis_url")
        self.charset = input_charset.lower()
        self.keys = Keys(key_prefix)
        self.redis = connect(redis_url or broker_url, socket_connect_timeout=5)
        self._app = producer_app(broker_url, key_prefix)
        self.producer = Producer(self._app, self.redis, self.keys)

    def __repr__(self) -> str:  # URLs may carry a password: never shown
        return f"OperatorClient(key_prefix={self.keys.prefix!r})"

    def enqueue(self, *, customer_code: str = "", type_code: str = "",
                trans_account_out: str = "", biz_type: str = "", user_email: str = "",
                reference: str = "", campaign: str = "") -> str:
        """Validate and enqueue one unsign; returns the job id.

        Raises:
            ValidationError: a parameter, the reference or the campaign id breaks a rule (names
                field and rule).
            ReferenceConflictError: ``reference`` is bound to a job with other parameters.
        """
        errors = reference_errors(reference)
        if campaign and not CAMPAIGN_ID_RE.fullmatch(campaign):
            errors.append(FieldError("campaign", "format", "must be 1 to 48 letters, digits, "
                                     "'_', '.' or '-', starting with a letter or digit"))
        try:
            params = validated_params({"customer_code": customer_code, "type_code": type_code,
                                       "trans_account_out": trans_account_out,
                                       "biz_type": biz_type, "user_email": user_email},
                                      charset=self.charset)
        except ValidationError as exc:
            errors = exc.errors + errors
        if errors:
            raise ValidationError(errors)
        job = Job(job_id=new_job_id(), params=params, campaign=campaign,
                  reference=reference)
        try:
            return submit(self.producer, job)
        except ReferenceConflictError as exc:
            # recorded as its own job, so the refusal is on file where the producer looks
            self.producer.record_rejected(job.job_id, reference=reference, code=CONFLICT_CODE,
                                          reason=str(exc), source="client")
            raise ReferenceConflictError(exc.job_id, job.job_id) from None

    def conflicts(self, reference: str) -> list[str]:
        """Ids of the jobs refused ``REFERENCE_CONFLICT`` for ``reference`` (a request that
        named it with other parameters than the job :meth:`find` returns)."""
        return sorted(m.decode() for m in self.redis.smembers(self.keys.conflicts(reference)))

    def find(self, reference: str) -> str | None:
        """The id of the job bound to ``reference``, or None."""
        found = self.redis.get(self.keys.ref(reference))
        return found.decode() if found else None

    def status(self, job_id: str) -> JobStatus | None:
        """The job's current status, or None if no such job (or its record has expired)."""
        raw = self.redis.hgetall(self.keys.job(job_id))
        return JobStatus.from_record(job_id, raw) if raw else None

    def wait(self, job_id: str, timeout: float = 60.0) -> JobStatus:
        """Poll until the job is terminal; ``timeout`` in seconds.

        A Redis outage (restart, failover) is waited out within ``timeout``: logged once as
        "Redis unavailable since …, retrying", then polling carries on.

        Raises:
            TimeoutError: not terminal in time (the job goes on; wait again later), Redis
                included: still unavailable when the time was up.
            KeyError: no such job.
        """
        return wait_for_end(lambda: self.status(job_id), what=f"job {job_id}",
                            timeout=timeout, poll_seconds=POLL_INTERVAL_SECONDS)

    def close(self) -> None:
        self.redis.close()
        self._app.close()

    def __enter__(self) -> OperatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
