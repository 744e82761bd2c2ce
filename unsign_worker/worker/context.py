"""Everything a worker process needs per job, built once per process from the settings."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.protocol.gateway import GatewayClient
from unsign_worker.protocol.param_rules import validate_charset, validate_partner
from unsign_worker.protocol.signing import Signer, make_signer
from unsign_worker.protocol.verification import require_verifier
from unsign_worker.settings import (
    EVENTS_MAXLEN,
    INTASK_BACKOFF_BASE_SECONDS,
    INTASK_BACKOFF_CAP_SECONDS,
    Settings,
    check_gateway_url,
)
from unsign_worker.store.breaker import Breaker
from unsign_worker.store.claims import DedupStore
from unsign_worker.store.keys import JOB_RETENTION_SECONDS, Keys
from unsign_worker.store.replication import Replication
from unsign_worker.store.sentinel import connect
from unsign_worker.worker import kombu_fixes
from unsign_worker.worker.hooks import HookRunner, load_hook
from unsign_worker.worker.reachability import Reachability
from unsign_worker.worker.retry_policy import RetryPolicy


@dataclass
class WorkerContext:
    settings: Settings
    redis: redis.Redis
    keys: Keys
    gateway: GatewayClient
    signer: Signer
    policy: RetryPolicy
    dedup: DedupStore
    breaker: Breaker
    hooks: HookRunner
    #: WAIT after the writes acted on (UNSIGN_REPLICA_ACKS): store/replication.py
    replication: Replication
    job_retention_seconds: int = JOB_RETENTION_SECONDS
    events_maxlen: int = EVENTS_MAXLEN
    #: until when this process parks claimed jobs without sending: it just saw the breaker open
    local_halt_until: float = 0.0
    #: whether the gateway answers this process; set by a worker that can stop taking jobs
    #: while it does not (worker/gateway_watch.py); None: every job is sent
    reachability: Reachability | None = None

    def gateway_unreachable(self) -> bool:
        """True while this process cannot reach the gateway: take no job, hand them back."""
        return self.reachability is not None and not self.reachability.reachable

    def close(self) -> None:
        self.gateway.close()
        self.redis.close()


def make_redis(url: str, *, pool_size: int = 200) -> redis.Redis:
    return connect(url, max_connections=pool_size, health_check_interval=30,
                                socket_connect_timeout=5, socket_keepalive=True)


def build_signer(settings: Settings) -> Signer:
    """The signer of ``settings``, refused (ConfigError naming the variable) unless it can also
    verify the gateway's answers: never a process that would have to take answers on trust."""
    signer = make_signer(settings.sign_type, key=settings.key.reveal(),
                         private_key_pem=settings.private_key_pem.reveal() or None,
                         public_key_pem=settings.public_key_pem or None)
    require_verifier(signer)
    return signer


def build_context(settings: Settings) -> WorkerContext:
    """Build the per-process context. Raises ConfigError on a bad setting."""
    kombu_fixes.apply()
    check_gateway_url(settings.gateway_url, sandbox=settings.sandbox,
                      allowed_hosts=settings.gateway_allowed_hosts)
    problems = validate_partner(settings.partner) + validate_charset(settings.input_charset)
    if problems:
        names = {"partner": "ALIPAY_PARTNER", "_input_charset": "ALIPAY_INPUT_CHARSET"}
        raise ConfigError("; ".join(f"{names.get(p.field, p.field)}: {p.message}"
                                    for p in problems))
    client = make_redis(settings.redis_url)
    keys = Keys(settings.key_prefix)
    signer = build_signer(settings)
    gateway = GatewayClient(gateway_url=settings.gateway_url,
                            connect_timeout_seconds=settings.connect_timeout_seconds,
                            read_timeout_seconds=settings.read_timeout_seconds,
                            pool_size=settings.http_pool_size,
                            max_response_bytes=settings.max_response_bytes,
                            ca_bundle=settings.ca_bundle,
                            max_connection_age_seconds=settings.http_max_connection_age_seconds)
    policy = RetryPolicy(intask_budget_seconds=settings.intask_retry_budget_seconds,
                         intask_base_seconds=INTASK_BACKOFF_BASE_SECONDS,
                         intask_cap_seconds=INTASK_BACKOFF_CAP_SECONDS,
                         countdown_base_seconds=settings.retry_countdown_base_seconds,
                         countdown_cap_seconds=settings.retry_countdown_cap_seconds,
                         deadline_seconds=settings.retry_deadline_seconds)
    replication = Replication(client, keys, acks=settings.replica_acks,
                              wait_ms=settings.replica_wait_ms)
    return WorkerContext(
        settings=settings, redis=client, keys=keys, gateway=gateway, signer=signer,
        policy=policy, dedup=DedupStore(client, keys),
        breaker=Breaker(client, keys, threshold=settings.breaker_threshold,
                        window_seconds=settings.breaker_window_seconds),
        hooks=HookRunner(client, keys, load_hook(settings.success_hook),
                         replication=replication),
        replication=replication,
    )
