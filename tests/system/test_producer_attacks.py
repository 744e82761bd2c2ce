"""A hostile producer against another, played as an outside reviewer would: one private
``redis-server`` running exactly the users ``unsign-worker acl --producer victim --producer
attacker`` prints, real worker processes (the worker's user) over the TLS gateway emulator, the
victim enqueueing with :class:`UnsignClient` and the attacker with its own Redis user, raw.

Each attack must fail, and nothing of the victim's be lost or changed:

1. choosing entry ids to overwrite another job's record and fake its outcome (the victim's
   stream is not writable; the attacker's own stream, exhausted or replayed, only hurts
   itself; job ids are random, never derived from entry ids);
2. reading other jobs' personal data (no job record, no other producer's key is readable, not
   even the parameters of one's own jobs; nor a job the operator enqueued);
3. making queued entries vanish (``MAXLEN 0`` only trims one's own stream);
4. exhausting memory with huge entries (refused inside Redis: the worker never reads them),
   and a flood (the client's clear ``BacklogFullError``; the surplus refused, counted);
5. squatting references (each producer's references are its own).

And a worker killed (SIGKILL) while it takes a batch of entries, at each step of taking them,
never makes a second job: once another worker has taken over, every entry is exactly one job,
unsigned once. The operator's console runs as the operator's printed user and shows the
producers; a rebinding page gets nothing from it (the rest of the console's part, throttled
logins included, is in ``tests/console/test_console_trust.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.paths import ROOT
from tests.plugins.acl_users import AclRedis, assert_refused, start_acl_redis
from tests.plugins.console_fixtures import ConsoleProcess, send, text_of
from tests.plugins.crash_points import CRASH_POINTS
from tests.plugins.emulator import KEY, PARTNER, Emulator, cae, partner_protocol
from tests.plugins.worker_fixtures import WorkerEnv, wait_for
from tests.private_redis import needs_redis_server
from tests.system.test_security_redis import run_cli
from unsign_worker.producers.client import BacklogFullError, UnsignClient
from unsign_worker.store.keys import Keys

pytestmark = [pytest.mark.slow, needs_redis_server]

PREFIX = "unsign:"
KEYS = Keys(PREFIX)
VICTIM, ATTACKER = "victim", "attacker"
#: The last id a stream can hold: once added, no entry can follow it.
LAST_ID = "18446744073709551615-18446744073709551615"
JOB_ID = re.compile(r"[0-9a-f]{32}")
#: Seconds a job may take to end, generous: a worker's start, a claim of stale entries (30 s).
JOB_DEADLINE = 150.0
#: The size of each huge entry of attack 4, bytes, and how many the attacker adds.
HUGE_ENTRY_BYTES = 8 * 1024 * 1024
HUGE_ENTRIES = 40


def victim_agreement(n: int) -> Any:
    """The victim's agreements: ``v<n>``, customer code ``C<n>``."""
    return cae(f"v{n}", n)


def attacker_agreement(n: int) -> Any:
    """The attacker's agreements: ``x<n>``, customer code ``C<500 + n>``."""
    return cae(f"x{n}", 500 + n)


def code(n: int) -> str:
    return f"C{n:05d}"


def entry(customer_code: str, reference: str = "") -> dict[str, str]:
    """A stream entry as any language writes it: one JSON job in the field ``job``."""
    job = {"customer_code": customer_code}
    if reference:
        job["reference"] = reference
    return {"job": json.dumps(job)}


def decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of process ``pid``, KiB, from /proc."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


@dataclass
class Deployment:
    """The private Redis and its users, the gateway, and the workers (the worker's user)."""

    acl: AclRedis
    gw: Emulator
    env: WorkerEnv
    clients: list[Any] = field(default_factory=list)

    @property
    def admin(self) -> redis.Redis:
        return self.acl.admin

    def operator(self, *args: str) -> str:
        """Run ``unsign-worker ARGS`` as the operator; returns its output (exit code 0)."""
        code_, out = run_cli({"UNSIGN_REDIS_URL": self.acl.url("operator"),
                              "UNSIGN_KEY_PREFIX": PREFIX}, *args)
        assert code_ == 0, out
        return out

    def client(self, name: str) -> UnsignClient:
        """``UnsignClient`` as producer ``name``, with its own Redis user."""
        client = UnsignClient(self.acl.url(f"producer-{name}"), producer=name,
                              key_prefix=PREFIX)
        self.clients.append(client)
        return client

    def raw(self, name: str) -> redis.Redis:
        """Producer ``name``'s Redis user, for any command it may try."""
        client = self.acl.client(f"producer-{name}")
        self.clients.append(client)
        return client

    def start_workers(self, count: int = 1, *, name: str = "w") -> list[subprocess.Popen[bytes]]:
        return [self.env.start_worker(f"{name}{n}", concurrency=4) for n in range(1, count + 1)]

    def stop_workers(self) -> None:
        self.env.stop_all()
        assert all(proc.poll() is not None for proc in self.env.procs)

    def record(self, job_id: str) -> dict[str, str]:
        """A job's record, as the workers wrote it."""
        return decoded(self.admin.hgetall(KEYS.job(job_id)))

    def status(self, agreement_id: str) -> tuple[str, int]:
        """An agreement's status at the gateway, and how many times it was really unsigned."""
        state = self.gw.call(lambda: self.gw.state.agreement(agreement_id).status)
        return state, self.gw.unsigns(agreement_id)

    def drained(self, name: str) -> bool:
        """Every entry of producer ``name``'s stream taken (none left, none pending)."""
        stream = KEYS.inbox(name)
        if self.admin.xlen(stream):
            return False
        try:
            return all(g["pending"] == 0 for g in self.admin.xinfo_groups(stream))
        except redis.ResponseError:  # no stream at all
            return True

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def deployment(tmp_path: Path, emulator_factory: Any, worker_env_factory: Any
               ) -> Iterator[Callable[..., Deployment]]:
    """``deployment(agreements, attacker_max_pending=..., **worker_env)``: the private Redis
    with the printed users, the two producers registered by the operator, a TLS emulator with
    ``agreements``; no worker started yet. Everything is stopped after the test."""
    made: list[Deployment] = []

    def make(agreements: Sequence[Any], *, attacker_max_pending: int = 0,
             **extra: str) -> Deployment:
        acl = start_acl_redis(tmp_path, PREFIX, [VICTIM, ATTACKER])
        try:
            gw = emulator_factory(list(agreements))
            env: WorkerEnv = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                                                **extra)
            env.redis_url, env.prefix = acl.url("worker"), PREFIX
            env.__post_init__()
        except BaseException:
            acl.stop()
            raise
        made.append(Deployment(acl=acl, gw=gw, env=env))
        made[-1].operator("producer", "add", VICTIM)
        limit = ["--max-pending", str(attacker_max_pending)] if attacker_max_pending else []
        made[-1].operator("producer", "add", ATTACKER, *limit)
        return made[-1]

    try:
        yield make
    finally:
        for d in made:
            try:
                d.env.stop_all()
                d.close()
            finally:
                d.acl.stop()


# --- 1. choosing entry ids to overwrite another job ----------------------------------------

def test_attack_1_an_attacker_neither_writes_the_victims_stream_nor_reaches_its_job_through_ids(
        deployment: Callable[..., Deployment]) -> None:
    d = deployment([victim_agreement(1), victim_agreement(2), attacker_agreement(1),
                    attacker_agreement(2), attacker_agreement(3)])
    victim, attacker = d.client(VICTIM), d.client(ATTACKER)
    hostile = d.raw(ATTACKER)
    mine, theirs = KEYS.inbox(ATTACKER), KEYS.inbox(VICTIM)
    # Given the victim's request, queued while the workers are stopped
    request = victim.enqueue(customer_code=code(1), reference="order-1")

    # When the attacker tries to write the victim's stream, in any way
    assert_refused({
        "XADD *": lambda: hostile.xadd(theirs, entry(code(501), "order-1")),
        "XADD the victim's entry id": lambda: hostile.xadd(theirs, entry(code(501)), id=request),
        "XADD the last id": lambda: hostile.xadd(theirs, entry(code(501)), id=LAST_ID),
        "XSETID": lambda: hostile.execute_command("XSETID", theirs, LAST_ID),
        "XDEL": lambda: hostile.xdel(theirs, request),
        "DEL": lambda: hostile.delete(theirs),
        "SET the victim's binding": lambda: hostile.set(KEYS.producer_entry(VICTIM, request),
                                                         "0" * 32),
    })
    # and, in its own stream, adds an entry under the victim's entry id (naming its own
    # agreement and the victim's reference), then the last possible id: its stream is full
    replayed = hostile.xadd(mine, entry(code(501), "order-1"), id=request).decode()
    assert replayed == request
    assert hostile.xadd(mine, entry(code(502)), id=LAST_ID).decode() == LAST_ID
    for new_id in ("*", "1-1"):
        with pytest.raises(redis.ResponseError, match="exhausted"):
            hostile.xadd(mine, entry(code(503)), id=new_id)
    with pytest.raises(redis.ResponseError, match="exhausted"):
        attacker.enqueue(customer_code=code(503))  # its own client cannot add either

    # Then, once a worker runs: the victim's job is the victim's, unsigned at the gateway
    d.start_workers()
    outcome = victim.wait(request, timeout=JOB_DEADLINE)
    assert outcome.state == "unsigned" and outcome.code == "", outcome
    own = attacker.wait(replayed, timeout=JOB_DEADLINE)
    assert own.state == "unsigned", own  # the attacker's entry is its own job, nothing else
    assert attacker.wait(LAST_ID, timeout=JOB_DEADLINE).state == "unsigned"
    victim_job = d.record(outcome.job_id)
    assert victim_job["producer"] == VICTIM and victim_job["state"] == "unsigned"
    assert json.loads(victim_job["params"])["customer_code"] == code(1)
    assert victim_job["reference"] == "order-1"
    assert json.loads(d.record(own.job_id)["params"])["customer_code"] == code(501)
    assert d.record(own.job_id)["producer"] == ATTACKER
    # the dedup records: the victim's agreement held by the victim's job, unsigned
    held = {a["holder"]: a["state"] for a in (decoded(d.admin.hgetall(k))
                                              for k in d.acl.scan(f"{PREFIX}agreement:*"))}
    assert held.get(outcome.job_id) == held.get(own.job_id) == "unsigned", held
    # job ids are random: unrelated to the entry id they were made for, in either stream
    for job_id, stream in ((outcome.job_id, theirs), (own.job_id, mine)):
        assert JOB_ID.fullmatch(job_id)
        derived = [hashlib.sha256(f"{s}{sep}{request}".encode()).hexdigest()[:32]
                   for s in (stream, PREFIX, "") for sep in ("\x1f", "", ":")]
        assert job_id not in derived
    assert outcome.job_id != own.job_id

    # When an operator recovers the attacker's stream (deletes it), and the attacker adds
    # the old entry id again, this time naming the victim's agreement
    operator = d.acl.client("operator")
    d.clients.append(operator)
    operator.delete(mine)
    hostile.xadd(mine, entry(code(1)), id=request)
    wait_for(lambda: d.drained(ATTACKER), timeout=JOB_DEADLINE,
             what="the replayed entry to be taken")
    # Then the replay names the attacker's earlier job, which it does not change
    assert attacker.status(request).job_id == own.job_id
    assert json.loads(d.record(own.job_id)["params"])["customer_code"] == code(501)
    # and the victim still enqueues; its second job gets an id of its own
    second = victim.wait(victim.enqueue(customer_code=code(2), reference="order-2"),
                         timeout=JOB_DEADLINE)
    assert second.state == "unsigned" and JOB_ID.fullmatch(second.job_id)
    assert second.job_id not in (outcome.job_id, own.job_id)

    # And nothing of the victim's changed: its record, its reference, its request's status,
    # and at the gateway each agreement was unsigned once, by its own producer's job
    assert d.record(outcome.job_id) == victim_job
    assert victim.find("order-1") == outcome.job_id and victim.conflicts("order-1") == []
    assert victim.status(request).job_id == outcome.job_id
    assert d.status("v1") == ("unsigned", 1) and d.status("v2") == ("unsigned", 1)
    assert d.status("x1") == ("unsigned", 1) and d.status("x2") == ("unsigned", 1)
    assert d.status("x3") == ("signed", 0)
    assert d.gw.stats()["duplicates"] == 0


# --- 2. reading other jobs' personal data --------------------------------------------------

def test_attack_2_an_attacker_reads_no_job_record_nor_any_key_of_the_victim_or_the_operator(
        deployment: Callable[..., Deployment]) -> None:
    email = "user7@example.com"
    d = deployment([victim_agreement(1), attacker_agreement(1), partner_protocol("pp7", 7)])
    victim, attacker = d.client(VICTIM), d.client(ATTACKER)
    hostile = d.raw(ATTACKER)
    d.start_workers()
    # Given a job of the victim, one of the attacker, and one the operator enqueued with
    # `unsign-worker enqueue --biz-type 10004 --user-email ...`, all unsigned
    v_request = victim.enqueue(customer_code=code(1), reference="order-1")
    v_job = victim.wait(v_request, timeout=JOB_DEADLINE)
    a_job = attacker.wait(attacker.enqueue(customer_code=code(501), reference="mine"),
                          timeout=JOB_DEADLINE)
    out = d.operator("enqueue", "--biz-type", "10004", "--user-email", email,
                     "--reference", "op-1")
    o_job = out.strip().splitlines()[-1]
    assert JOB_ID.fullmatch(o_job), out
    d.env.wait_terminal([o_job], timeout=JOB_DEADLINE)
    assert {v_job.state, a_job.state, d.record(o_job)["state"]} == {"unsigned"}
    assert d.status("pp7") == ("unsigned", 1)

    # When the attacker reads the records, the victim's keys, the operator's
    attempts: dict[str, Callable[[], object]] = {}
    for name, job_id in (("victim's", v_job.job_id), ("operator's", o_job),
                         ("own", a_job.job_id)):
        attempts[f"HGETALL {name} record"] = lambda j=job_id: hostile.hgetall(KEYS.job(j))
        attempts[f"HGET {name} params"] = lambda j=job_id: hostile.hget(KEYS.job(j), "params")
        attempts[f"GET {name} record"] = lambda j=job_id: hostile.get(KEYS.job(j))
    attempts.update({
        "HGETALL victim's view": lambda: hostile.hgetall(KEYS.producer_job(VICTIM,
                                                                          v_job.job_id)),
        "GET victim's reference": lambda: hostile.get(KEYS.producer_ref(VICTIM, "order-1")),
        "GET victim's binding": lambda: hostile.get(KEYS.producer_entry(VICTIM, v_request)),
        "HGETALL victim's settings": lambda: hostile.hgetall(KEYS.producer_settings(VICTIM)),
        "XRANGE victim's refused": lambda: hostile.xrange(KEYS.producer_refused(VICTIM)),
        "XRANGE victim's stream": lambda: hostile.xrange(KEYS.inbox(VICTIM)),
        "GET operator's reference": lambda: hostile.get(KEYS.ref("op-1")),
        "XRANGE intake": lambda: hostile.xrange(KEYS.intake),
        "XRANGE audit": lambda: hostile.xrange(KEYS.audit),
        "XRANGE events": lambda: hostile.xrange(KEYS.events),
        "HGETALL producers": lambda: hostile.hgetall(KEYS.producers),
        "SCAN": lambda: hostile.scan(0, match=f"{PREFIX}job:*"),
        "KEYS": lambda: hostile.keys(f"{PREFIX}*"),
        "RANDOMKEY": lambda: hostile.randomkey(),
        "DUMP": lambda: hostile.dump(KEYS.job(v_job.job_id)),
        "SORT BY/GET": lambda: hostile.sort(KEYS.inbox(ATTACKER), get=f"{PREFIX}job:*->params"),
        "EVAL": lambda: hostile.eval("return redis.call('HGETALL', KEYS[1])", 1,
                                     KEYS.job(v_job.job_id)),
        "MONITOR": lambda: hostile.execute_command("MONITOR"),
        "CLIENT LIST": lambda: hostile.client_list(),
    })
    for key in d.acl.scan(f"{PREFIX}agreement:*"):
        attempts[f"HGETALL {key}"] = lambda k=key: hostile.hgetall(k)
    # Then each is refused
    assert_refused(attempts)
    # and the attacker reads its own job's state, never its parameters
    view = decoded(hostile.hgetall(KEYS.producer_job(ATTACKER, a_job.job_id)))
    assert view["state"] == "unsigned" and "params" not in view
    assert code(501) not in json.dumps(view)
    assert not a_job.params_masked
    # And nothing the attacker's user may read, key by key, holds anyone's personal data
    secrets = (code(1), code(501), email, email.split("@")[0])
    readable = 0
    for key in d.acl.scan(f"{PREFIX}*"):
        content = _read_as(hostile, key, d.admin.type(key).decode())
        if content is None:
            continue
        readable += 1
        assert not any(s in content for s in secrets), (key, content)
    assert readable >= 3  # its settings, its view, its binding and reference at least


def _read_as(client: redis.Redis, key: str, kind: str) -> str | None:
    """What ``client`` reads of ``key`` (None: refused)."""
    read = {"hash": client.hgetall, "string": client.get, "stream": client.xrange,
            "set": client.smembers, "list": lambda k: client.lrange(k, 0, -1),
            "zset": lambda k: client.zrange(k, 0, -1)}[kind]
    try:
        return repr(read(key))
    except redis.exceptions.NoPermissionError:
        return None


# --- 3. making entries vanish ----------------------------------------------------------------

def test_attack_3_maxlen_0_trims_only_the_attackers_own_stream(
        deployment: Callable[..., Deployment]) -> None:
    d = deployment([*(victim_agreement(n) for n in range(1, 5)),
                    *(attacker_agreement(n) for n in range(1, 3))])
    victim, attacker = d.client(VICTIM), d.client(ATTACKER)
    hostile = d.raw(ATTACKER)
    # Given workers that ran a first job of the victim's, then stopped
    d.start_workers()
    assert victim.wait(victim.enqueue(customer_code=code(1)), timeout=JOB_DEADLINE
                       ).state == "unsigned"
    d.stop_workers()
    # and three entries of the victim's, two of the attacker's, queued
    queued = [victim.enqueue(customer_code=code(n), reference=f"order-{n}")
              for n in range(2, 5)]
    own = [attacker.enqueue(customer_code=code(500 + n)) for n in range(1, 3)]

    # When the attacker trims the victim's stream, and then its own
    assert_refused({
        "XADD MAXLEN 0": lambda: hostile.xadd(KEYS.inbox(VICTIM), entry(code(501)), maxlen=0),
        "XADD MINID": lambda: hostile.execute_command(
            "XADD", KEYS.inbox(VICTIM), "MINID", "=", LAST_ID, "*", "job", "{}"),
        "XTRIM": lambda: hostile.xtrim(KEYS.inbox(VICTIM), maxlen=0),
    })
    hostile.xadd(KEYS.inbox(ATTACKER), entry(code(501)), maxlen=0, approximate=False)

    # Then only its own entries vanished
    assert d.admin.xlen(KEYS.inbox(ATTACKER)) == 0
    assert [e[0].decode() for e in d.admin.xrange(KEYS.inbox(VICTIM))] == queued
    # and once workers run again, every queued entry of the victim's is its job, unsigned
    d.start_workers(name="again")
    for n, request in enumerate(queued, start=2):
        status = victim.wait(request, timeout=JOB_DEADLINE)
        assert status.state == "unsigned", status
        assert victim.find(f"order-{n}") == status.job_id
        assert d.status(f"v{n}") == ("unsigned", 1)
    # the attacker lost its own, and only that
    assert [attacker.status(r) for r in own] == [None, None]
    assert d.status("x1") == d.status("x2") == ("signed", 0)
    assert d.admin.hgetall(KEYS.producers_rejected) == {}


# --- 4. huge entries and floods ----------------------------------------------------------------

def test_attack_4_huge_entries_are_refused_before_a_worker_reads_them_and_a_flood_is_capped(
        deployment: Callable[..., Deployment]) -> None:
    cap, beyond = 50, 10
    d = deployment([*(victim_agreement(n) for n in range(1, 9)),
                    *(attacker_agreement(n) for n in range(1, cap + beyond + 1))],
                   attacker_max_pending=cap)
    victim, attacker = d.client(VICTIM), d.client(ATTACKER)
    hostile = d.raw(ATTACKER)
    # Given, while the workers are stopped, a flood of the attacker's: its client stops at
    # its cap with a clear error, and raw entries beyond the cap are added anyway
    flood = []
    with pytest.raises(BacklogFullError, match=f"cap is {cap}"):
        for n in range(1, cap + 2):
            flood.append(attacker.enqueue(customer_code=code(500 + n)))
    assert len(flood) == cap
    flood += [hostile.xadd(KEYS.inbox(ATTACKER), entry(code(500 + n))).decode()
              for n in range(cap + 1, cap + beyond + 1)]
    first = [victim.enqueue(customer_code=code(n)) for n in range(1, 4)]

    # When two workers start, the surplus is refused unread, the victim's jobs run
    workers = d.start_workers(2)
    for request in first:
        assert victim.wait(request, timeout=JOB_DEADLINE).state == "unsigned"
    ends = [attacker.wait(r, timeout=JOB_DEADLINE) for r in flood]
    assert sorted(s.state for s in ends) == ["rejected"] * beyond + ["unsigned"] * cap
    assert {s.code for s in ends if s.state == "rejected"} == {"BACKLOG_FULL"}

    # When the attacker adds 40 entries of 8 MB to its own stream at once (one transaction:
    # the workers find them all in their next read), the victim enqueueing before and after,
    # with the workers' memory measured before and after
    before = [memory_kib(w.pid) for w in workers]
    redis_before = d.admin.info("memory")["used_memory"]
    during = [victim.enqueue(customer_code=code(4)), victim.enqueue(customer_code=code(5))]
    with hostile.pipeline(transaction=True) as pipe:
        for _ in range(HUGE_ENTRIES):
            pipe.xadd(KEYS.inbox(ATTACKER), {"job": "x" * HUGE_ENTRY_BYTES})
        huge = [entry_id.decode() for entry_id in pipe.execute()]
    during += [victim.enqueue(customer_code=code(6)), victim.enqueue(customer_code=code(7))]
    wait_for(lambda: int(d.admin.hget(KEYS.producers_rejected, f"{ATTACKER}:max_size") or 0)
             >= HUGE_ENTRIES, timeout=JOB_DEADLINE, what="the huge entries to be refused")
    for request in during:
        assert victim.wait(request, timeout=JOB_DEADLINE).state == "unsigned"
    after = [memory_kib(w.pid) for w in workers]
    redis_peak = d.admin.info("memory")["used_memory_peak"]
    redis_after = d.admin.info("memory")["used_memory"]
    figures = (f"workers VmRSS KiB before {[m['VmRSS'] for m in before]} after "
               f"{[m['VmRSS'] for m in after]}; VmHWM before {[m['VmHWM'] for m in before]} "
               f"after {[m['VmHWM'] for m in after]}; Redis used_memory before {redis_before} "
               f"peak {redis_peak} after {redis_after}; {HUGE_ENTRIES} entries of "
               f"{HUGE_ENTRY_BYTES} bytes")
    print(figures)

    # Then no worker's memory grew by anything near one entry's size, at its peak either
    for b, a in zip(before, after, strict=True):
        assert a["VmRSS"] - b["VmRSS"] < HUGE_ENTRY_BYTES // 1024, figures
        assert a["VmHWM"] - b["VmHWM"] < HUGE_ENTRY_BYTES // 1024, figures
    # and Redis gives the entries' memory back (the connection's buffers shrink when idle)
    assert d.admin.xlen(KEYS.inbox(ATTACKER)) == 0
    settled = wait_for(lambda: (lambda used: used - redis_before < HUGE_ENTRY_BYTES and used)(
        d.admin.info("memory")["used_memory"]), timeout=JOB_DEADLINE,
        what=f"Redis to give the entries' memory back ({figures})")
    print(f"Redis used_memory settled at {settled}")
    # And each entry is refused max_size, told to the attacker and counted for the operator
    refused = {f[b"entry"].decode(): decoded(f) for _, f in
               hostile.xrange(KEYS.producer_refused(ATTACKER))}
    assert set(huge) <= set(refused)
    assert {refused[r]["reason"] for r in huge} == {"max_size"}
    for request in (huge[0], huge[-1]):
        status = attacker.status(request)
        assert (status.state, status.code) == ("rejected", "ENTRY_TOO_LARGE"), status
    listed = {p["name"]: p for p in json.loads(d.operator("producer", "list", "--json")
                                               )["producers"]}
    assert listed[ATTACKER]["rejected"] == {"max_pending": beyond, "max_size": HUGE_ENTRIES}
    assert listed[VICTIM]["rejected"] == {} and listed[VICTIM]["waiting"] == 0
    # the victim lost nothing, every one of its agreements unsigned once
    assert [d.status(f"v{n}") for n in range(1, 8)] == [("unsigned", 1)] * 7
    assert all(w.poll() is None for w in workers)


# --- 5. squatting references -------------------------------------------------------------------

def test_attack_5_a_reference_bound_first_by_the_attacker_is_not_the_victims(
        deployment: Callable[..., Deployment]) -> None:
    d = deployment([victim_agreement(1), attacker_agreement(1), attacker_agreement(2)])
    victim, attacker = d.client(VICTIM), d.client(ATTACKER)
    d.start_workers()
    # Given the attacker bound "order-1" first
    squat = attacker.wait(attacker.enqueue(customer_code=code(501), reference="order-1"),
                          timeout=JOB_DEADLINE)
    assert squat.state == "unsigned"
    # When the victim enqueues its own "order-1" (and the attacker tries it again after)
    request = victim.enqueue(customer_code=code(1), reference="order-1")
    mine = victim.wait(request, timeout=JOB_DEADLINE)
    again = attacker.wait(attacker.enqueue(customer_code=code(502), reference="order-1"),
                          timeout=JOB_DEADLINE)
    # Then the victim's "order-1" is its own job, with its own outcome
    assert (mine.state, mine.code) == ("unsigned", ""), mine
    assert mine.job_id != squat.job_id
    assert victim.find("order-1") == mine.job_id and victim.conflicts("order-1") == []
    assert json.loads(d.record(mine.job_id)["params"])["customer_code"] == code(1)
    assert d.status("v1") == ("unsigned", 1)
    # the attacker's second try conflicts with its own job only
    assert (again.state, again.code) == ("rejected", "REFERENCE_CONFLICT")
    assert attacker.find("order-1") == squat.job_id
    assert attacker.conflicts("order-1") == [again.job_id]
    assert d.status("x1") == ("unsigned", 1) and d.status("x2") == ("signed", 0)
    # the operator's references are another namespace still
    assert not d.admin.exists(KEYS.ref("order-1"))



def test_the_console_as_the_operators_user_shows_producers_and_gives_a_rebinding_page_nothing(
        deployment: Callable[..., Deployment], tmp_path: Path) -> None:
    # Given a victim's job done, and an attacker's huge entry refused
    d = deployment([victim_agreement(1)])
    victim = d.client(VICTIM)
    d.start_workers()
    done = victim.wait(victim.enqueue(customer_code=code(1), reference="order-1"),
                       timeout=JOB_DEADLINE)
    d.raw(ATTACKER).xadd(KEYS.inbox(ATTACKER), {"job": "x" * 20_000})
    wait_for(lambda: d.admin.hget("unsign:producers:rejected", "attacker:max_size") == b"1",
             timeout=JOB_DEADLINE, what="the huge entry to be refused")
    # When the console runs as the operator's printed user, without credentials, keyless
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "UNSIGN_"))}
    env.update(UNSIGN_REDIS_URL=d.acl.url("operator"), UNSIGN_KEY_PREFIX=PREFIX,
               PYTHONUNBUFFERED="1")
    console = ConsoleProcess(env, tmp_path / "console.log")
    try:
        base, port = console.base, urllib.parse.urlsplit(console.base).port
        # Then its pages work: the producers and their refusals, the victim's job by reference
        health = send(base, "GET", "/health")
        assert health.status == 200, health
        shown = text_of(health.body)
        assert "victim 0 -" in shown and "attacker 0 max_size 1" in shown, shown
        found = send(base, "GET", "/lookup?q=order-1")
        assert found.status == 200 and done.job_id in found.body
        # and a page under a rebinding name gets nothing, on any path
        for path in ("/health", "/lookup?q=order-1", "/escalations"):
            reply = send(base, "GET", path, host=f"rebind.attacker.example:{port}")
            assert reply.status == 421 and done.job_id not in reply.body
    finally:
        console.stop()

# --- a crash while entries are being taken -----------------------------------------------------

@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_worker_killed_while_taking_a_batch_of_entries_makes_no_second_job(
        deployment: Callable[..., Deployment], point: str) -> None:
    count = 150
    d = deployment([victim_agreement(n) for n in range(1, count + 1)],
                   UNSIGN_SUCCESS_HOOK="tests.plugins.crash_points:no_hook",
                   PYTHONPATH=str(ROOT), UNSIGN_TEST_CRASH_PRODUCER=VICTIM,
                   UNSIGN_TEST_CRASH_AT=point)
    victim = d.client(VICTIM)
    # Given a burst of the victim's entries (every other with a reference), queued
    requests = [victim.enqueue(customer_code=code(n),
                               reference=f"order-{n}" if n % 2 else "")
                for n in range(1, count + 1)]

    # When a worker dies (SIGKILL) at this point of taking its first batch of them
    crashing = d.env.start_worker("crashing", concurrency=4, wait=False)
    wait_for(lambda: crashing.poll() is not None, timeout=JOB_DEADLINE,
             what=f"the worker to die at {point!r}")
    assert crashing.returncode == -signal.SIGKILL, d.env.log_tail("crashing")
    taken = d.admin.xpending(KEYS.inbox(VICTIM), "unsign-workers")["pending"]
    assert 2 <= taken < count  # it died with a batch in hand
    bound = d.acl.scan(f"{PREFIX}producer:{VICTIM}:entry:*")
    records = d.acl.scan(f"{PREFIX}job:*")
    references = d.acl.scan(f"{PREFIX}producer:{VICTIM}:ref:*")
    assert len(bound) == taken
    assert len(references) == (0 if point == "bound" else (taken + 1) // 2), point
    assert len(records) == (0 if point in ("bound", "records") else taken), point

    # and another worker takes over (the dead one's entries once they are stale)
    d.env.extra.pop("UNSIGN_TEST_CRASH_AT")
    d.start_workers(2, name="after")
    ends = {r: victim.wait(r, timeout=JOB_DEADLINE + 60) for r in requests}

    # Then every entry is exactly one job, recorded once, unsigned once at the gateway
    wait_for(lambda: d.drained(VICTIM), timeout=JOB_DEADLINE, what="every entry acknowledged")
    jobs = {r: s.job_id for r, s in ends.items()}
    assert {s.state for s in ends.values()} == {"unsigned"}, \
        {s.state for s in ends.values()}
    assert len(set(jobs.values())) == count
    bindings = {k: d.admin.get(k).decode()
                for k in d.acl.scan(f"{PREFIX}producer:{VICTIM}:entry:*")}
    assert len(bindings) == count
    assert sorted(bindings.values()) == sorted(jobs.values())
    assert sorted(d.acl.scan(f"{PREFIX}job:*")) == sorted(KEYS.job(j) for j in jobs.values())
    assert len(d.acl.scan(f"{PREFIX}producer:{VICTIM}:job:*")) == count
    for n, request in enumerate(requests, start=1):
        record = d.record(jobs[request])
        assert (record["state"], record["producer"]) == ("unsigned", VICTIM)
        assert json.loads(record["params"])["customer_code"] == code(n)
        if n % 2:
            assert victim.find(f"order-{n}") == jobs[request]
    assert all(d.gw.unsigns(f"v{n}") == 1 for n in range(1, count + 1))
    stats = d.gw.stats()
    assert (stats["unsigns"], stats["duplicates"]) == (count, 0)
    assert d.admin.hgetall(KEYS.producers_rejected) == {}
