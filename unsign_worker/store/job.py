"""The job: what a task message carries. Pure, and importable by producers without the worker.

A message carries only the job — an id, the business parameters, the campaign id and the
producer's reference — never a key, a signature or a secret; signing happens in the worker::

    {"job_id": "…", "params": {"customer_code": "…"}, "campaign": "", "reference": "…",
     "enqueued_at": 1764140000.0}

``masked_repr`` is what Celery shows as ``kwargsrepr`` (logs, events, Flower).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _json_str  # what dumps(ensure_ascii=False) uses
from typing import Any

from unsign_worker.protocol.exceptions import FieldError, ValidationError
from unsign_worker.protocol.masking import mask_params
from unsign_worker.store.keys import producer_name_error

#: Task names, used by producers that send by name.
UNSIGN_TASK = "unsign_worker.unsign"
UNSIGN_BATCH_TASK = "unsign_worker.unsign_batch"
#: Single jobs taken in bulk from the inbox streams: a batch that shows each job in Flower as
#: its own ``unsign_worker.unsign`` task.
UNSIGN_JOBS_TASK = "unsign_worker.unsign_jobs"
HOOK_TASK = "unsign_worker.run_hook"
#: Longest producer reference accepted.
MAX_REFERENCE_LENGTH = 128
#: A job id, as every producer of this project makes one (a UUID's or a digest's 32 hex
#: digits); nothing else may reach a key name (``job_id="resolved"`` would be ``P dlq:resolved``).
JOB_ID_RE = re.compile(r"[0-9a-f]{32}")
#: A campaign id: given by the operator or ``c-`` and a digest.
CAMPAIGN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}")


def new_job_id() -> str:
    """A new job's id (the form :data:`JOB_ID_RE` accepts)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Job:
    job_id: str
    params: dict[str, str]
    campaign: str = ""
    reference: str = ""
    enqueued_at: float = field(default_factory=time.time)
    #: the producer whose entry made the job ("" for the operator's and campaigns' jobs)
    producer: str = ""

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> Job:
        """Decode a message body; raises ValidationError naming the field that is wrong."""
        if not isinstance(data, Mapping):  # a hand-made or hostile message
            raise ValidationError([FieldError("job", "type", "must be an object")])
        errors: list[FieldError] = []
        job_id = data.get("job_id")
        if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
            errors.append(FieldError("job_id", "format", "must be 32 lower-case hex digits"))
        params = data.get("params")
        if not isinstance(params, Mapping):
            errors.append(FieldError("params", "type", "must be an object of business "
                                     "parameters"))
        for name in ("campaign", "reference"):
            value = data.get(name, "")
            if value is not None and not isinstance(value, str):
                errors.append(FieldError(name, "type", "must be a string"))
        campaign = data.get("campaign") or ""
        if isinstance(campaign, str) and campaign and not CAMPAIGN_ID_RE.fullmatch(campaign):
            errors.append(FieldError("campaign", "format", "must be 1 to 48 letters, digits, "
                                     "'_', '.' or '-', starting with a letter or digit"))
        producer = data.get("producer") or ""
        if not isinstance(producer, str) or (producer and producer_name_error(producer)):
            errors.append(FieldError("producer", "format", "must be a producer's name"))
        reference = data.get("reference") or ""
        if isinstance(reference, str) and len(reference) > MAX_REFERENCE_LENGTH:
            errors.append(FieldError("reference", "max_length",
                                     f"is longer than {MAX_REFERENCE_LENGTH} characters"))
        if errors:
            raise ValidationError(errors)
        enqueued = data.get("enqueued_at")
        return cls(job_id=str(job_id), params=dict(params or {}),  # type: ignore[arg-type]
                   campaign=str(data.get("campaign") or ""), reference=str(reference),
                   enqueued_at=float(enqueued) if isinstance(enqueued, (int, float)) else
                   time.time(), producer=str(producer))

    def to_message(self) -> dict[str, Any]:
        message = {"job_id": self.job_id, "params": dict(self.params),
                   "campaign": self.campaign, "reference": self.reference,
                   "enqueued_at": self.enqueued_at}
        if self.producer:
            message["producer"] = self.producer
        return message

    def params_json(self) -> str:
        """:func:`params_json` of the parameters, made once (kept in the instance's dict: a
        ``cached_property`` takes a lock on every read before Python 3.12)."""
        made = self.__dict__.get("_params_json")
        if made is None:
            made = self.__dict__["_params_json"] = params_json(self.params)
        return made

    def masked(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "params": mask_params(self.params),
                "campaign": self.campaign, "reference": self.reference,
                "producer": self.producer}

    def __repr__(self) -> str:
        # a job ends up in log lines and tracebacks: never with its personal data in clear
        return (f"Job(job_id={self.job_id!r}, params={mask_params(self.params)!r}, "
                f"campaign={self.campaign!r}, reference={self.reference!r}, "
                f"producer={self.producer!r})")


def params_json(params: Mapping[str, Any]) -> str:
    """``json.dumps(params, sort_keys=True, ensure_ascii=False)``, the form records keep,
    built directly when every key and value is a string (about 3x faster: a campaign makes one
    per job)."""
    if all(type(k) is str and type(v) is str for k, v in params.items()):
        return "{" + ", ".join([_json_str(k) + ": " + _json_str(params[k])
                                for k in sorted(params)]) + "}"
    return json.dumps(params, sort_keys=True, ensure_ascii=False)


def masked_repr(message: Mapping[str, Any]) -> str:
    """``kwargsrepr`` for a message: personal data masked, never a secret."""
    params = message.get("params")
    shown = dict(message)
    if isinstance(params, Mapping):
        shown["params"] = mask_params(params)
    shown.pop("enqueued_at", None)
    return repr({"job": shown})


def batch_repr(messages: Sequence[Mapping[str, Any]]) -> str:
    """``kwargsrepr`` for a batch: its size, job ids and references (so Flower's search finds a
    job inside a batch), never parameters."""
    # type() first: isinstance(m, Mapping) is an ABC check, slow for a campaign's 200 messages
    shown = [m for m in messages if type(m) is dict or isinstance(m, Mapping)]
    ids = [str(m.get("job_id", "")) for m in shown]
    refs = [str(m.get("reference") or "") for m in shown]
    return repr({"jobs": f"<{len(messages)} jobs>", "job_ids": ids,
                 "references": [r for r in refs if r]})
