"""What an operator does, for the CLI and the console alike: requeue or resolve dead letters,
pause, resume or cancel a campaign, reset the breaker. Each action is written to the operators'
journal (:mod:`unsign_worker.ops.actions`) with who did it and their note.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from unsign_worker.ops.actions import ActionLog
from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.settings import Settings
from unsign_worker.store.breaker import Breaker
from unsign_worker.store.campaign_control import CampaignControl
from unsign_worker.store.campaigns import CampaignStore
from unsign_worker.store.deadletter import DeadLetterError, DeadLetters, require_note
from unsign_worker.store.job import Job
from unsign_worker.store.keys import Keys
from unsign_worker.store.recovery import message_from_record

#: Campaign actions and what each one says once done (``{sent}``: jobs sent again).
CAMPAIGN_ACTIONS = {
    "pause": "paused: jobs not yet sent wait; requests in flight finish",
    "resume": "resumed: {sent} parked job(s) sent again",
    "cancel": "cancelled: nothing more is sent ({sent} waiting job(s) closed as cancelled); "
              "requests in flight finish",
}


def producer_for(settings: Settings, client: redis.Redis) -> Producer:
    """A producer on the settings' broker and Redis (the caller closes ``producer.app``)."""
    app = producer_app(settings.broker_url, settings.key_prefix,
                       visibility_timeout_seconds=int(settings.visibility_timeout_seconds))
    return Producer(app, client, Keys(settings.key_prefix))


def republisher(settings: Settings, producer: Producer) -> Callable[[str, float], bool]:
    """``republish(job_id, now) -> bool``: send a job again from its record, unless ended."""
    def republish(job_id: str, now: float) -> bool:
        message = message_from_record(producer.redis, producer.keys, job_id, now)
        if message is None:
            return False
        producer.send(Job.from_message(message))
        return True

    return republish


@dataclass
class Requeued:
    requeued: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Operations:
    """One operator's actions on one deployment (settings + Redis)."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.redis = client
        self.keys = Keys(settings.key_prefix)
        self.dlq = DeadLetters(client, self.keys, audit_maxlen=settings.audit_maxlen)
        self.journal = ActionLog(client, self.keys)
        self.campaigns = CampaignStore(client, self.keys)

    def requeue(self, job_ids: Sequence[str], *, by: str, note: str) -> Requeued:
        """Send dead-lettered jobs again; each success is journaled with ``note``.

        Raises: NoteRequired (blank note; nothing is requeued)."""
        note = require_note("requeue", note)
        out = Requeued()
        producer = producer_for(self.settings, self.redis)
        republish = republisher(self.settings, producer)
        try:
            for job_id in job_ids:
                try:
                    self.dlq.requeue(job_id, republish=republish, by=by,
                                     lease_seconds=self.settings.lease_seconds)
                except DeadLetterError as exc:
                    out.failed[job_id] = str(exc)
                    continue
                out.requeued.append(job_id)
                self.journal.record(by=by, action="requeue", target=job_id, note=note)
        finally:
            producer.app.close()
        return out

    def resolve(self, job_id: str, *, by: str, note: str) -> None:
        """Close a dead-letter entry by hand. Raises: DeadLetterError (absent), NoteRequired."""
        note = require_note("resolve", note)
        self.dlq.resolve(job_id, note=note, by=by)
        self.journal.record(by=by, action="resolve", target=job_id, note=note)

    def steer_campaign(self, action: str, campaign_id: str, *, by: str, note: str = "") -> str:
        """Pause, resume or cancel; returns what happened. Raises: CampaignError."""
        producer = producer_for(self.settings, self.redis)
        try:
            control = CampaignControl(self.campaigns, republisher(self.settings, producer))
            sent = getattr(control, action)(campaign_id)
        finally:
            producer.app.close()
        said = CAMPAIGN_ACTIONS[action].format(sent=sent)
        self.journal.record(by=by, action=action, target=f"campaign:{campaign_id}", note=note,
                            detail=said)
        return said

    def reset_breaker(self, *, by: str, note: str = "") -> None:
        breaker = Breaker(self.redis, self.keys, threshold=1, window_seconds=1)
        before = breaker.state()
        breaker.reset()
        self.journal.record(by=by, action="breaker_reset", target="breaker", note=note,
                            detail=f"was {before.state} {before.code}".strip())
