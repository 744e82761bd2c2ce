"""Every Redis key this project writes, built in one place. Pure: strings in, strings out.

All keys start with ``UNSIGN_KEY_PREFIX`` (default ``unsign:``); written ``P`` below. No key name
contains personal data: agreements are named by :attr:`unsign_worker.protocol.params.Identity.key`,
a
digest.

=====================================  ======  ====================================================
key                                    type    content and retention
=====================================  ======  ====================================================
``P job:<job_id>``                     hash    one job: state, params (JSON), identity, campaign,
                                               reference, attempts, retry state (retries,
                                               first_failure_at), code, reason, timestamps;
                                               expires ``JOB_RETENTION_SECONDS`` after it ends
``P ref:<reference>``                  string  reference of an operator's or campaign's job
                                               -> job id (same retention); a producer's are
                                               under ``P producer:<name>:ref:``
``P conflicts:<reference>``            set     ids of jobs rejected ``REFERENCE_CONFLICT``: they
                                               named a reference already bound to another job
``P agreement:<identity>``             hash    dedup: holder job, state (in_flight | held |
                                               unsigned), fencing token, lease expiry; kept
                                               without expiry once ``unsigned``
``P leases``                           zset    job id -> lease expiry (epoch s, Redis's clock)
                                               of every job that is not terminal (a queued
                                               job: when its message is next looked for); the
                                               sweeper re-publishes those past expiry
``P parked``                           zset    job id -> time parked while the breaker is open
``P hook:<identity>``                  hash    success hook state: pending | running | done |
                                               failed, attempts, idempotency key, last error
``P hooks``                            zset    identity -> time the hook is due (sweeper)
``P breaker``                          hash    circuit breaker: state, opened_at, code, reason
``P breaker:halts``                    zset    recent halt answers (window)
``P breaker:probe``                    string  half-open probe lock (expires)
``P dlq``                              zset    dead-lettered job id -> time
``P dlq:<job_id>``                     hash    the dead-letter entry (code, meaning, advice,
                                               attempts, masked job); kept until requeue/resolve
``P dlq:resolved``                     zset    resolved job id -> time (entries kept 30 days)
``P audit``                            stream  every attempt (bounded with MAXLEN ~)
``P events``                           stream  every success (unsigned / already_unsigned)
``P counts``                           hash    outcome -> jobs that hold it, all time
``P rate:<minute>``                    hash    outcome -> jobs that reached it in that minute
                                               (of their finished_at) and hold it; a requeue
                                               takes a dead letter back from both (expires
                                               ``RATE_RETENTION_SECONDS``, 25 h: the last hour
                                               and the outcomes of each of the last 24)
``P campaign:<id>``                    hash    campaign meta: name, total, state (running |
                                               paused | cancelled | done), rate (jobs/s, 0 =
                                               unlimited), timestamps
``P campaign:<id>:counts``             hash    outcome -> count within the campaign
``P campaign:<id>:progress``           hash    ``<time>:<outcome>`` -> jobs of the campaign that
                                               reached it in the 10 seconds from ``<time>``
                                               (epoch s, ``PROGRESS_STEP_SECONDS``) and hold it:
                                               its progress over time, kept as long as the
                                               campaign (fewer fields than it has jobs)
``P campaign:<id>:jobs``               list    job ids in input order (report)
``P campaign:<id>:parked``             zset    job id -> time parked while the campaign is paused
``P campaign:<id>:rate:<second>``      string  jobs started in that second (expires in 2 s)
``P campaign:<id>:rejects``            list    rows the validator refused: JSON {line, reference,
                                               errors: [{field, rule, message}]}, no values
``P campaign:<id>:jobs:new``           list    the jobs list being rebuilt (renamed over
                                               ``:jobs`` once complete)
``P campaigns``                        zset    campaign id -> creation time
``P inbox:<name>``                     stream  the jobs of producer ``<name>``, any language
                                               (consumer group ``unsign-workers``); the only
                                               key that producer may write
``P inbox``                            stream  the stream all producers shared in earlier versions:
                                               no longer read; ``unsign-worker producer
                                               adopt-legacy NAME`` moves its entries
``P producers``                        hash    producer name -> JSON settings (max_pending,
                                               added_at): the producers the workers read
``P producers:rejected``               hash    ``<name>:<reason>`` -> entries of that producer
                                               refused for that reason, all time (metric)
``P producer:<name>:settings``         hash    that producer's limits (max_pending,
                                               max_entry_bytes), readable by it
``P producer:<name>:entry:<entry_id>`` string  an entry of its stream -> the job id bound to it
                                               (``SET NX``: a second read makes no second job)
``P producer:<name>:ref:<reference>``  string  that producer's reference -> job id
``P producer:<name>:conflicts:<ref>``  set     its jobs rejected ``REFERENCE_CONFLICT``
``P producer:<name>:job:<job_id>``     hash    what the producer may read of its job: state,
                                               code, reason, attempts, reference, timestamps,
                                               never the parameters; kept as long as the job
``P producer:<name>:refused``          stream  its entries refused unread (too large, over its
                                               cap of pending entries): {entry, reason,
                                               detail}, bounded (MAXLEN ~)
``P intake``                           stream  jobs of ``unsign-worker enqueue`` (the operator),
                                               already recorded: {job: message JSON}; read
                                               with the producers' streams (same group),
                                               handed to the pool in batches
``P workers``                          zset    worker hostname -> last heartbeat
``P gateway_unreachable``              hash    worker hostname -> JSON {since, cause} while the
                                               gateway is unreachable from that worker
``P sweeper``                          string  lock: one sweeper at a time (expires)
``P replica:probe``                    string  written before each repeated ``WAIT`` of a held
                                               write (store/replication.py; expires in 60 s)
``P held``                             zset    task message id -> lease expiry of every message a
                                               worker has received (prefetched or running); the
                                               worker renews it, the sweeper recovers the jobs
                                               of a message whose lease expired
``P held:<message_id>``                string  JSON list of the job ids that message carries
``P redis_run``                        string  the Redis run id the sweeper last saw (a change
                                               means a restart: queued jobs are checked against
                                               the broker)
=====================================  ======  ====================================================

The Celery broker's own keys (queues, unacked) live under ``P`` too, through kombu's
``global_keyprefix`` (``P unsign`` is the queue, ``P unacked`` the messages delivered and not yet
acknowledged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Every Redis key this project writes starts with this (``UNSIGN_KEY_PREFIX``).
DEFAULT_KEY_PREFIX = "unsign:"
#: Approximate length kept in the audit stream (``UNSIGN_AUDIT_MAXLEN``).
AUDIT_MAXLEN = 1_000_000
#: Per-minute outcome counts (``P rate:<minute>``) are kept this long, seconds: the last hour,
#: and the outcomes of each of the last 24 hours (job_ended.lua writes the same number).
RATE_RETENTION_SECONDS = 25 * 3600
#: Seconds of one step of a campaign's progress (``P campaign:<id>:progress``; job_ended.lua and
#: dlq_requeue.lua use the same number).
PROGRESS_STEP_SECONDS = 10
#: Job records are kept this long after reaching a terminal state, seconds.
JOB_RETENTION_SECONDS = 30 * 86400
#: Celery queue of single jobs.
QUEUE = "unsign"
#: Celery queue of the success hook's own retries.
HOOK_QUEUE = "unsign.hooks"
#: Consumer group of the workers on ``P inbox`` and ``P intake``.
INBOX_GROUP = "unsign-workers"
#: Stands for "no campaign" in key names, so every key a script declares is a real key under
#: the prefix (an ACL user limited to ``~<prefix>*`` may not name an empty key); the scripts
#: test the campaign argument, and never touch these keys without a campaign.
NO_CAMPAIGN = "-"
#: Stands for "no producer" (a job of the operator or of a campaign) in the name of the
#: producer's view a script declares; no producer may be called that (:data:`PRODUCER_NAME_RE`).
NO_PRODUCER = "-"
#: A producer's name: it goes into key names and into its ACL key patterns.
PRODUCER_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def producer_name_error(name: str) -> str | None:
    """Why ``name`` cannot name a producer, or None."""
    if PRODUCER_NAME_RE.fullmatch(name):
        return None
    return (f"producer name {name[:40]!r} must be 1 to 32 lower-case letters, digits, '_' or "
            "'-', starting with a letter or digit")


@dataclass(frozen=True)
class Keys:
    """Key builder for one prefix."""

    prefix: str

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def ref(self, reference: str) -> str:
        return f"{self.prefix}ref:{reference}"

    def conflicts(self, reference: str) -> str:
        return f"{self.prefix}conflicts:{reference}"

    def agreement(self, identity_key: str) -> str:
        return f"{self.prefix}agreement:{identity_key}"

    def hook(self, identity_key: str) -> str:
        return f"{self.prefix}hook:{identity_key}"

    def dlq_entry(self, job_id: str) -> str:
        return f"{self.prefix}dlq:{job_id}"

    def campaign(self, campaign_id: str) -> str:
        return f"{self.prefix}campaign:{campaign_id}"

    def campaign_counts(self, campaign_id: str) -> str:
        return f"{self.prefix}campaign:{campaign_id}:counts"

    def campaign_progress(self, campaign_id: str) -> str:
        return f"{self.prefix}campaign:{campaign_id}:progress"

    def campaign_jobs(self, campaign_id: str) -> str:
        return f"{self.prefix}campaign:{campaign_id}:jobs"

    def campaign_rejects(self, campaign_id: str) -> str:
        return f"{self.prefix}campaign:{campaign_id}:rejects"

    def campaign_jobs_new(self, campaign_id: str) -> str:
        return f"{self.prefix}campaign:{campaign_id}:jobs:new"

    def rate(self, minute: int) -> str:
        return f"{self.prefix}rate:{minute}"

    @property
    def leases(self) -> str:
        return f"{self.prefix}leases"

    def campaign_parked(self, campaign_id: str) -> str:
        return f"{self.prefix}campaign:{campaign_id}:parked"

    def campaign_rate(self, campaign_id: str, second: int) -> str:
        return f"{self.campaign_rates(campaign_id)}{second}"

    def campaign_rates(self, campaign_id: str) -> str:
        """The prefix of the campaign's per-second counters: the claim script appends the
        second of the Redis server's clock."""
        return f"{self.prefix}campaign:{campaign_id}:rate:"

    @property
    def parked(self) -> str:
        return f"{self.prefix}parked"

    @property
    def hooks(self) -> str:
        return f"{self.prefix}hooks"

    @property
    def breaker(self) -> str:
        return f"{self.prefix}breaker"

    @property
    def breaker_halts(self) -> str:
        return f"{self.prefix}breaker:halts"

    @property
    def breaker_probe(self) -> str:
        return f"{self.prefix}breaker:probe"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}dlq"

    @property
    def dlq_resolved(self) -> str:
        return f"{self.prefix}dlq:resolved"

    @property
    def audit(self) -> str:
        return f"{self.prefix}audit"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def counts(self) -> str:
        return f"{self.prefix}counts"

    @property
    def campaigns(self) -> str:
        return f"{self.prefix}campaigns"

    def inbox(self, producer: str) -> str:
        """The stream of producer ``producer``'s entries."""
        return f"{self.prefix}inbox:{producer}"

    @property
    def producers(self) -> str:
        return f"{self.prefix}producers"

    @property
    def legacy_inbox(self) -> str:
        """The stream every producer shared before each had its own (no longer read)."""
        return f"{self.prefix}inbox"

    @property
    def producers_rejected(self) -> str:
        return f"{self.prefix}producers:rejected"

    def producer_space(self, producer: str) -> str:
        """The prefix of every key producer ``producer`` may read (its ACL pattern + ``*``)."""
        return f"{self.prefix}producer:{producer}:"

    def producer_settings(self, producer: str) -> str:
        return f"{self.producer_space(producer)}settings"

    def producer_entry(self, producer: str, entry_id: str) -> str:
        return f"{self.producer_space(producer)}entry:{entry_id}"

    def producer_ref(self, producer: str, reference: str) -> str:
        return f"{self.producer_space(producer)}ref:{reference}"

    def producer_conflicts(self, producer: str, reference: str) -> str:
        return f"{self.producer_space(producer)}conflicts:{reference}"

    def producer_job(self, producer: str, job_id: str) -> str:
        """The producer's view of its job (``NO_PRODUCER`` for a job without one)."""
        return f"{self.producer_space(producer or NO_PRODUCER)}job:{job_id}"

    def producer_refused(self, producer: str) -> str:
        return f"{self.producer_space(producer)}refused"

    def reference(self, producer: str, reference: str) -> str:
        """Where ``reference`` of ``producer`` ("" for the operator and campaigns) is bound."""
        return self.producer_ref(producer, reference) if producer else self.ref(reference)

    def reference_conflicts(self, producer: str, reference: str) -> str:
        return (self.producer_conflicts(producer, reference) if producer
                else self.conflicts(reference))

    @property
    def intake(self) -> str:
        return f"{self.prefix}intake"

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    @property
    def gateway_unreachable(self) -> str:
        return f"{self.prefix}gateway_unreachable"

    @property
    def sweeper(self) -> str:
        return f"{self.prefix}sweeper"

    @property
    def replica_probe(self) -> str:
        return f"{self.prefix}replica:probe"

    @property
    def unacked(self) -> str:
        """kombu's hash of delivered, unacknowledged messages (global_keyprefix applied)."""
        return f"{self.prefix}unacked"

    @property
    def unacked_index(self) -> str:
        """kombu's zset of those messages' delivery tags -> when the consumer received them
        (its own clock)."""
        return f"{self.prefix}unacked_index"

    @property
    def held(self) -> str:
        return f"{self.prefix}held"

    def held_message(self, message_id: str) -> str:
        return f"{self.prefix}held:{message_id}"

    @property
    def redis_run(self) -> str:
        return f"{self.prefix}redis_run"

    def queue(self, name: str = QUEUE) -> str:
        """The broker list of a Celery queue (kombu's global_keyprefix applied)."""
        return f"{self.prefix}{name}"
