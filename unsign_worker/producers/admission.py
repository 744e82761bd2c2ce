"""Admitting a job: bind its reference, write its record, hand it to the workers.

A job the operator enqueues (``unsign-worker enqueue``, with the operator's Redis rights) is
written with its entry in ``P intake`` in one transaction (:func:`submit`,
:meth:`Producer.admit`); the workers read that stream (:mod:`unsign_worker.worker.inbox`) and
run its jobs in batches. The inbox, inside a worker, records the jobs of the producers'
entries itself (the new ones of a read together: :func:`record_new`; any other with
:func:`record`) and hands them to the pool. A reference is bound among its producer's own
(``Job.producer``; the operator's and campaigns' in ``P ref:``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace

from unsign_worker.producers.producer import REF_RETENTION_SECONDS, Producer
from unsign_worker.protocol.exceptions import UnsignError
from unsign_worker.store.job import Job
from unsign_worker.store.states import JobState


class ReferenceConflictError(UnsignError):
    """The reference is already bound to a job with other parameters.

    ``job_id`` is that other job; ``rejected_job_id`` (set by :meth:`OperatorClient.enqueue`) the
    job recorded ``rejected`` with code ``REFERENCE_CONFLICT`` for this refused request.
    """

    def __init__(self, job_id: str, rejected_job_id: str = "") -> None:
        super().__init__(f"reference is already bound to job {job_id}, whose parameters differ; "
                         "use a new reference for a different agreement")
        self.job_id = job_id
        self.rejected_job_id = rejected_job_id


def _resolve(producer: Producer, job: Job) -> tuple[Job, bytes | None]:
    """The job ``job``'s reference (or id) names, and the state of its record (None: none yet).

    Raises:
        ReferenceConflictError: the reference names a job with other parameters.
    """
    if job.reference:
        bound, created = producer.resolve_reference(job.reference, job.job_id, job.producer)
        if created:  # just bound to this job's id: no record can exist yet
            return job, None
        job = replace(job, job_id=bound)
    state, params = producer.redis.hmget(producer.keys.job(job.job_id), "state", "params")
    if (state is not None and job.reference and params is not None
            and json.loads(params) != job.params):
        raise ReferenceConflictError(job.job_id)
    return job, state


def submit(producer: Producer, job: Job) -> str:
    """Record ``job`` and hand it to the workers unless its reference or id already names a job;
    returns its id.

    The record and the job's entry in ``P intake`` are written in one transaction; the workers
    read that stream and run its jobs in batches (:mod:`unsign_worker.worker.inbox`).
    Idempotent: a reference already bound returns the bound job; a job whose record is still
    ``queued`` is handed over again (the worker drops a redundant copy), a job past ``queued``
    is left alone.

    Raises:
        ReferenceConflictError: the reference names a job with other parameters.
    """
    job, state = _resolve(producer, job)
    if state is None:
        producer.admit([job])
    elif state == JobState.QUEUED.value.encode():
        producer.admit([job], new=False)
    return job.job_id


def record(producer: Producer, job: Job) -> tuple[str, Job | None]:
    """Record ``job`` as :func:`submit` does, without handing it over (the inbox, inside a
    worker, hands its jobs to the pool itself). Returns its id and the job to hand over, or
    None if it is already past ``queued``.

    Raises:
        ReferenceConflictError: the reference names a job with other parameters.
    """
    job, state = _resolve(producer, job)
    if state is None:
        producer.write_records([job])
    elif state != JobState.QUEUED.value.encode():
        return job.job_id, None
    return job.job_id, job


def record_new(producer: Producer, jobs: Mapping[str, Job]) -> dict[str, Job]:
    """Record, in two round trips for all, the jobs of ``jobs`` (any key -> job) that are new:
    whose reference this call binds, or, without a reference, that have no record. Returns
    those (same keys); any other job is left alone for :func:`record` to look at one by one
    (a reference already bound, a record already there)."""
    if not jobs:
        return {}
    pipe = producer.redis.pipeline(transaction=False)
    for job in jobs.values():
        if job.reference:
            pipe.set(producer.keys.reference(job.producer, job.reference), job.job_id, nx=True,
                     ex=REF_RETENTION_SECONDS)
        else:
            pipe.exists(producer.keys.job(job.job_id))
    replies = pipe.execute()
    new = {key: job for (key, job), reply in zip(jobs.items(), replies, strict=True)
           if (bool(reply) if job.reference else not reply)}
    if new:
        producer.write_records(list(new.values()))
    return new
