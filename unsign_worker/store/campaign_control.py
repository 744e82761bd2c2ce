"""Pause, resume and cancel a campaign.

The workers' claim reads the campaign's state before every request (see
:mod:`unsign_worker.store.claims`): a job of a paused campaign is parked in
``P campaign:<id>:parked`` and its message acknowledged; a job of a cancelled campaign ends
``cancelled`` without a request. A request already in flight is never interrupted.

- ``pause``: running -> paused.
- ``resume``: paused -> running, then every parked job is sent again from its record.
- ``cancel``: running or paused -> cancelled, then parked jobs and jobs recorded but never
  sent (an interrupted enqueue) are sent, so the workers close them as ``cancelled`` and the
  campaign's counts add up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from unsign_worker.store.campaigns import CampaignStore
from unsign_worker.store.scripts import load
from unsign_worker.store.states import CampaignState, JobState

#: Parked jobs re-sent per round trip.
DRAIN_BATCH = 500

REMOVE_IF_UNCHANGED = load("campaign_remove_if_unchanged")

#: ``republish(job_id, now) -> bool``: send a job again from its record (e.g.
#: :meth:`unsign_worker.worker.sweeper.Sweeper.republish`); False if it has ended.
Republish = Callable[[str, float], bool]


class CampaignControl:
    def __init__(self, store: CampaignStore, republish: Republish) -> None:
        self.store = store
        self._republish = republish
        self._remove = REMOVE_IF_UNCHANGED.register(store.redis)

    def pause(self, campaign_id: str) -> None:
        """Raises: CampaignError (no such campaign, or not running)."""
        self.store.transition(campaign_id, CampaignState.PAUSED, CampaignState.RUNNING)

    def resume(self, campaign_id: str) -> int:
        """Returns how many parked jobs were sent again. Raises: CampaignError."""
        self.store.transition(campaign_id, CampaignState.RUNNING, CampaignState.PAUSED)
        return self.drain_parked(campaign_id)

    def cancel(self, campaign_id: str) -> int:
        """Returns how many jobs were sent to be closed as cancelled. Raises: CampaignError."""
        self.store.transition(campaign_id, CampaignState.CANCELLED, CampaignState.RUNNING,
                              CampaignState.PAUSED)
        return self.drain_parked(campaign_id) + self._send_unsent(campaign_id)

    def drain_parked(self, campaign_id: str) -> int:
        """Send every job parked so far again; an entry leaves the parked set only after its
        job was sent (and only if it was not parked again meanwhile)."""
        key = self.store.keys.campaign_parked(campaign_id)
        began = time.time()
        sent = 0
        while True:
            # only jobs parked before the drain began: one parked again since waits its turn
            entries = self.store.redis.zrangebyscore(key, "-inf", began, start=0,
                                                     num=DRAIN_BATCH, withscores=True)
            if not entries:
                return sent
            now = time.time()
            scored: list[str] = []
            for raw_id, score in entries:
                if self._republish(raw_id.decode(), now):
                    sent += 1
                scored += [raw_id.decode(), repr(float(score))]
            self._remove(keys={"zset": key}, args={"scored": scored})

    def _send_unsent(self, campaign_id: str) -> int:
        r, k = self.store.redis, self.store.keys
        sent = 0
        for ids in self.store.job_ids(campaign_id):
            pipe = r.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(k.job(job_id), "state", "sent_at")
            now = time.time()
            for job_id, (state, sent_at) in zip(ids, pipe.execute(), strict=True):
                queued = state == JobState.QUEUED.value.encode() and sent_at is None
                if queued and self._republish(job_id, now):
                    r.hset(k.job(job_id), "sent_at", repr(now))
                    sent += 1
        return sent

