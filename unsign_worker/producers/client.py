"""The Python client for other applications: enqueue an unsign, read its status, wait for it.

Needs only ``celery`` and ``redis`` and the pure modules ``params``, ``job``, ``keys``,
``states``, ``producer`` and ``verification``: it never imports the worker's code and never
holds a key or secret. A job's record and its entry in ``P intake`` are written in one round
trip (:mod:`unsign_worker.producers.admission`); the workers take the stream's jobs in bulk.
Like the worker, it refuses to start in an environment that sets ``ALIPAY_SIGN_TYPE`` RSA or
DSA without a usable ``ALIPAY_PUBLIC_KEY_FILE``::

    from unsign_worker.producers.client import UnsignClient

    client = UnsignClient(broker_url="redis://127.0.0.1:6379/0",
                          redis_url="redis://127.0.0.1:6379/0")
    job_id = client.enqueue(customer_code="C00000000042", reference="order-42")
    print(client.wait(job_id, timeout=60).state)     # unsigned

A bad job raises :class:`~unsign_worker.protocol.exceptions.ValidationError` here, at the caller,
not in
the worker. The same ``reference`` enqueued twice returns the same job.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from unsign_worker.producers.admission import ReferenceConflictError, record, submit
from unsign_worker.producers.producer import CONFLICT_CODE, Producer, producer_app
from unsign_worker.protocol.exceptions import FieldError, ValidationError
from unsign_worker.protocol.masking import mask_params
from unsign_worker.protocol.param_rules import CHARSETS
from unsign_worker.protocol.params import UnsignRequest
from unsign_worker.protocol.verification import require_public_key_in_env
from unsign_worker.store.broker import check_store_url
from unsign_worker.store.job import CAMPAIGN_ID_RE, MAX_REFERENCE_LENGTH, Job, new_job_id
from unsign_worker.store.keys import DEFAULT_KEY_PREFIX, Keys
from unsign_worker.store.outage import OUTAGE_ERRORS, Outage, ride_out
from unsign_worker.store.sentinel import connect
from unsign_worker.store.states import FAILURE_STATES, TERMINAL_STATES, JobState

__all__ = ["JobStatus", "ReferenceConflictError", "UnsignClient", "record", "reference_errors",
           "submit", "validated_params"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: Seconds between two looks at a job's state in :meth:`UnsignClient.wait`.
POLL_INTERVAL_SECONDS = 0.2


def reference_errors(reference: str) -> list[FieldError]:
    """The rules of a producer reference: at most 128 characters, printable, no edge spaces."""
    errors: list[FieldError] = []
    if len(reference) > MAX_REFERENCE_LENGTH:
        errors.append(FieldError("reference", "max_length",
                                 f"is longer than {MAX_REFERENCE_LENGTH} characters"))
    # fast path: printable ASCII has no control characters (campaigns check 100,000s of these)
    if not (reference.isascii() and reference.isprintable()) and any(
            unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in reference):
        errors.append(FieldError("reference", "no_control_chars", "contains control characters"))
    if not reference.isascii() and any(unicodedata.category(ch) == "Cs" for ch in reference):
        # a lone surrogate (JSON's "\ud800") cannot be stored or hashed as UTF-8
        errors.append(FieldError("reference", "unicode", "is not valid Unicode text (it holds "
                                 "a lone surrogate)"))
    if reference != reference.strip():
        errors.append(FieldError("reference", "no_edge_whitespace",
                                 "has leading or trailing spaces"))
    return errors


def validated_params(params: dict[str, Any], *, charset: str) -> dict[str, str]:
    """The non-empty business parameters of a valid job. Raises: ValidationError."""
    request = UnsignRequest.from_mapping(params).validate(charset=charset)
    return request.business_params()


@dataclass(frozen=True)
class JobStatus:
    """A job as its record in Redis shows it; no personal data except in ``params_masked``."""

    job_id: str
    state: str
    code: str = ""
    reason: str = ""
    attempts: int = 0
    campaign: str = ""
    reference: str = ""
    original: str = ""
    created_at: float | None = None
    updated_at: float | None = None
    finished_at: float | None = None
    params_masked: dict[str, object] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_success(self) -> bool:
        return self.state in (JobState.UNSIGNED, JobState.ALREADY_UNSIGNED)

    @property
    def is_failure(self) -> bool:
        return self.state in FAILURE_STATES

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape of ``job show --json`` (see docs/cli.md)."""
        return {"job_id": self.job_id, "state": self.state, "terminal": self.is_terminal,
                "code": self.code, "reason": self.reason, "attempts": self.attempts,
                "campaign": self.campaign, "reference": self.reference,
                "original": self.original, "created_at": self.created_at,
                "updated_at": self.updated_at, "finished_at": self.finished_at,
                "params": self.params_masked or {}}

    @classmethod
    def from_record(cls, job_id: str, raw: dict[bytes, bytes]) -> JobStatus:
        rec = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}

        def num(name: str) -> float | None:
            try:
                return float(rec[name]) if rec.get(name) else None
            except ValueError:
                return None

        try:
            params = json.loads(rec.get("params") or "{}")
        except json.JSONDecodeError:
            params = {}
        return cls(job_id=job_id, state=rec.get("state", ""), code=rec.get("code", ""),
                   reason=rec.get("reason", ""), attempts=int(rec.get("attempts") or 0),
                   campaign=rec.get("campaign", ""), reference=rec.get("reference", ""),
                   original=rec.get("original", ""), created_at=num("created_at"),
                   updated_at=num("updated_at"), finished_at=num("finished_at"),
                   params_masked=mask_params(params) if isinstance(params, dict) else {})


class UnsignClient:
    """Enqueue unsign jobs and read their outcome, from any Python application."""

    def __init__(self, *, broker_url: str = DEFAULT_URL, redis_url: str | None = None,
                 key_prefix: str = DEFAULT_KEY_PREFIX, input_charset: str = "utf-8",
                 env: Mapping[str, str] | None = None) -> None:
        """``redis_url`` defaults to ``broker_url``; ``key_prefix`` and ``input_charset`` must
        match the workers' ``UNSIGN_KEY_PREFIX`` and ``ALIPAY_INPUT_CHARSET``.

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
        return f"UnsignClient(key_prefix={self.keys.prefix!r})"

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
        deadline = time.monotonic() + timeout
        outage = Outage("Redis")
        while True:
            try:
                found = ride_out(lambda: self.status(job_id), outage, deadline=deadline)
            except OUTAGE_ERRORS as exc:
                raise TimeoutError(f"job {job_id}: Redis still unavailable after {timeout:g}s "
                                   f"({type(exc).__name__}); the job goes on") from exc
            if found is None:
                raise KeyError(f"no job {job_id}")
            if found.is_terminal:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {found.state} after {timeout:g}s")
            time.sleep(POLL_INTERVAL_SECONDS)

    def close(self) -> None:
        self.redis.close()
        self._app.close()

    def __enter__(self) -> UnsignClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
