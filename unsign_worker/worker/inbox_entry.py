"""One entry of the inbox streams (:mod:`unsign_worker.worker.inbox`): of a producer's stream
``P inbox:<name>``, its fields read into a job and the rules that keep a hostile entry from
stopping the inbox; of ``P intake``, the job it carries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from unsign_worker.producers.job_input import reference_errors, validated_params
from unsign_worker.producers.producer import CONFLICT_CODE, Producer
from unsign_worker.protocol.exceptions import FieldError, ValidationError
from unsign_worker.store.job import Job
from unsign_worker.store.producer_registry import DEFAULT_MAX_ENTRY_BYTES

INVALID_CODE = "INVALID_JOB"
#: Largest entry read (field names and values together), bytes: a job is a few hundred. Larger
#: entries are refused inside Redis, before a worker reads them (``store/producer_streams.py``);
#: this is the check of last resort.
MAX_ENTRY_BYTES = DEFAULT_MAX_ENTRY_BYTES
#: Most fields an entry may have (a flat job has at most six).
MAX_ENTRY_FIELDS = 16
#: Longest reason stored for a rejected entry, characters.
MAX_REASON_CHARS = 2_000


def parse_entry(fields: Mapping[bytes, bytes]) -> tuple[dict[str, Any], str]:
    """``(params, reference)`` of one stream entry, not yet validated.

    Raises:
        ValidationError: the entry is too large, or not a JSON object of strings (field ``job``).
    """
    size = sum(len(k) + len(v) for k, v in fields.items())
    if size > MAX_ENTRY_BYTES or len(fields) > MAX_ENTRY_FIELDS:
        raise ValidationError([FieldError("job", "max_size", f"the entry holds {len(fields)} "
                                          f"fields and {size} bytes; at most {MAX_ENTRY_FIELDS} "
                                          f"fields and {MAX_ENTRY_BYTES} bytes are read")])
    decoded = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
               for k, v in fields.items()}
    if "job" in decoded:
        try:
            data = json.loads(decoded["job"])
        except json.JSONDecodeError as exc:
            raise ValidationError([FieldError("job", "json", f"is not valid JSON ({exc.msg}, "
                                              f"column {exc.colno})")]) from None
        except RecursionError:
            raise ValidationError([FieldError("job", "json", "is nested too deeply")]) from None
        except ValueError:  # a number of more than 4,300 digits
            raise ValidationError([FieldError("job", "json", "holds a number too long to "
                                              "read")]) from None
        if not isinstance(data, dict):
            raise ValidationError([FieldError("job", "json_object", "must be a JSON object")])
    else:
        data = dict(decoded)
    reference = data.pop("reference", "") or ""
    if not isinstance(reference, str):
        raise ValidationError([FieldError("reference", "type", "must be a string")])
    return data, reference


def storable(text: str) -> str:
    """``text`` cut to :data:`MAX_REASON_CHARS` and encodable as UTF-8 (a lone surrogate is
    escaped), so a hostile entry's reason can always be written."""
    if len(text) > MAX_REASON_CHARS:
        text = text[:MAX_REASON_CHARS] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def intake_job(fields: Mapping[bytes, bytes]) -> Job:
    """The job of an entry of ``P intake`` (``{job: <message JSON>}``).

    Raises:
        KeyError, ValueError (ValidationError included), TypeError: not such an entry.
    """
    return Job.from_message(json.loads(fields[b"job"]))


def reject(producer: Producer, job_id: str, reference: str, reason: str, *, code: str,
           audit_maxlen: int, name: str) -> str:
    """Record the job of an entry of producer ``name`` as ``rejected`` (never sent) and bind
    its reference (among that producer's) if valid and free; a reference bound to another job
    gets this job in that producer's conflicts of the reference."""
    if reference and reference_errors(reference):
        reference = ""
    if reference and code != CONFLICT_CODE:
        bound, created = producer.resolve_reference(reference, job_id, name)
        if bound == job_id and not created:
            return job_id  # read again after a crash: already recorded
        if not created:
            code = CONFLICT_CODE
            reason = f"reference is already bound to job {bound}; {reason}"
    return producer.record_rejected(job_id, reference=reference, code=code,
                                    reason=storable(reason), source="inbox",
                                    audit_maxlen=audit_maxlen, producer=name)


def valid_job(job_id: str, fields: Mapping[bytes, bytes], *, charset: str,
              producer: str) -> Job:
    """The job of a valid entry of ``producer``'s stream.

    Raises:
        ValidationError: the entry, a parameter or the reference breaks a rule (every rule
            broken, parameters first).
    """
    params, reference = parse_entry(fields)
    errors = reference_errors(reference)
    try:
        params = validated_params(params, charset=charset)
    except ValidationError as exc:
        errors = exc.errors + errors
    if errors:
        raise ValidationError(errors)
    return Job(job_id=job_id, params=params, reference=reference, producer=producer)


def reference_of(fields: Mapping[bytes, bytes]) -> str:
    """The reference an entry names, or "" if it cannot be read."""
    try:
        return parse_entry(fields)[1]
    except ValidationError:
        return ""
