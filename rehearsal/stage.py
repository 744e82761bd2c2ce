"""What a round needs on disk before any host starts: the gateway's private PKI (a certificate
for ``mapi.alipay.com``), the data set, the Alipay key, the Redis users with their passwords
(``unsign-worker acl``), and the configuration files of Redis and the Sentinels.

Everything lives in the round's folder; secrets are files of mode 0600, never arguments.
"""

from __future__ import annotations

import csv
import json
import secrets
import string
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rehearsal.topology import GATEWAY_NAME, Topology

CLI = str(Path(sys.executable).with_name("unsign-worker"))
PARTNER = "2088101568338364"
MASTER = "rhmaster"
PRODUCER = "app"
REDIS_HOSTS = ("redis1", "redis2", "redis3")
SENTINEL_HOSTS = ("sentinel1", "sentinel2", "sentinel3")
REDIS_PORT = 6379
SENTINEL_PORT = 26379
#: the users of ``unsign-worker acl`` the round gives a password: role -> user name
USERS = {"worker": "unsign-worker", "operator": "unsign-operator",
         "producer": f"unsign-producer-{PRODUCER}"}
#: the Sentinels' user towards each other
SENTINEL_PEER_USER = "rh-sentinel"


def _secret(n: int = 24) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def _private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


@dataclass
class Stage:
    """The round's files and passwords (the passwords never leave this object and the files)."""

    root: Path
    topology: Topology
    admin_password: str
    passwords: dict[str, str]
    key_file: Path
    ca_file: Path
    cert_file: Path
    cert_key_file: Path
    agreements_file: Path
    campaign_file: Path
    app_rows_file: Path
    #: agreement ids signed when the round begins
    initially_signed: frozenset[str]

    def __repr__(self) -> str:
        return f"Stage({self.root})"

    def redis_url(self, role: str) -> str:
        """The Sentinel URL of a role's user (``worker``, ``operator``, ``producer``), by the
        Sentinels' host names."""
        hosts = ",".join(f"{h}:{SENTINEL_PORT}" for h in SENTINEL_HOSTS)
        return f"redis+sentinel://{USERS[role]}:{self.passwords[role]}@{hosts}/{MASTER}/0"

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [(self.topology.address(h), SENTINEL_PORT) for h in SENTINEL_HOSTS]


def prepare(root: Path, topology: Topology, *, jobs: int, app_jobs: int, seed: int,
            min_replicas: int = 1, max_lag: int = 2) -> Stage:
    """Write every file of a round into ``root`` (made if missing). ``min_replicas`` > 0 makes
    the primary refuse writes (``NOREPLICAS``) with fewer replicas acknowledging within
    ``max_lag`` seconds (Redis's ``min-replicas-to-write`` and ``min-replicas-max-lag``; 1 and 2
    as deployment.md recommends, 0 for the unprotected configuration)."""
    root.mkdir(parents=True, exist_ok=True)
    tls = root / "tls"
    subprocess.run([CLI, "emulator", "tls", str(tls), "--host", GATEWAY_NAME], check=True,
                   capture_output=True)
    data = root / "data"
    data.mkdir(exist_ok=True)
    agreements, rows = data / "agreements.json", data / "all-rows.csv"
    subprocess.run([CLI, "emulator", "seed", "--count", str(jobs + app_jobs), "--mix", "demo",
                    "--seed", str(seed % 100000), "--agreements", str(agreements),
                    "--campaign", str(rows), "--partner", PARTNER],
                   check=True, capture_output=True)
    campaign, app_rows = data / "campaign.csv", data / "app-rows.csv"
    _split(rows, campaign, app_rows, app_jobs)
    stage = Stage(root=root, topology=topology, admin_password=_secret(),
                  passwords={role: _secret() for role in USERS},
                  key_file=_private(root / "alipay_key", _secret(32)),
                  ca_file=tls / "ca.pem", cert_file=tls / "gateway.pem",
                  cert_key_file=tls / "gateway-key.pem", agreements_file=agreements,
                  campaign_file=campaign, app_rows_file=app_rows,
                  initially_signed=_signed(agreements))
    _write_redis_configs(stage, min_replicas, max_lag)
    return stage


def _split(rows: Path, campaign: Path, app_rows: Path, app_jobs: int) -> None:
    """The last ``app_jobs`` rows go to the application, the others to the campaign."""
    with open(rows, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields, all_rows = list(reader.fieldnames or []), list(reader)
    cut = len(all_rows) - app_jobs
    for path, part in ((campaign, all_rows[:cut]), (app_rows, all_rows[cut:])):
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=fields)
            writer.writeheader()
            writer.writerows(part)


def _signed(agreements: Path) -> frozenset[str]:
    entries = json.loads(agreements.read_text(encoding="utf-8"))["agreements"]
    return frozenset(e["id"] for e in entries if e.get("status", "signed") == "signed")


def acl_lines(stage: Stage) -> list[str]:
    """The users ``unsign-worker acl`` prints, each with its password, and the default user
    with the administrator's (the harness, replication and the Sentinels use it)."""
    printed = subprocess.run([CLI, "acl", "--producer", PRODUCER], check=True,
                             capture_output=True, text=True).stdout
    by_name = {name: stage.passwords[role] for role, name in USERS.items()}
    lines = [f"user default on >{stage.admin_password} ~* &* +@all"]
    for line in printed.splitlines():
        if line.startswith("user "):
            name = line.split()[1]
            lines.append(f"{line} >{by_name[name]}")
    return lines


def _write_redis_configs(stage: Stage, min_replicas: int, max_lag: int) -> None:
    topo = stage.topology
    acl = _private(stage.root / "users.acl", "\n".join(acl_lines(stage)) + "\n")
    primary = topo.address("redis1")
    for host in REDIS_HOSTS:
        folder = stage.root / host
        folder.mkdir(exist_ok=True)
        lines = [f"bind {topo.address(host)} 127.0.0.1", f"port {REDIS_PORT}",
                 f"dir {folder}", f"aclfile {acl}", "appendonly yes",
                 "appendfsync everysec", "maxmemory-policy noeviction",
                 "masteruser default", f"masterauth {stage.admin_password}",
                 "save ''", f"logfile {folder / 'redis.log'}"]
        if min_replicas:
            lines += [f"min-replicas-to-write {min_replicas}", f"min-replicas-max-lag {max_lag}"]
        if host != "redis1":
            lines.append(f"replicaof {primary} {REDIS_PORT}")
        _private(folder / "redis.conf", "\n".join(lines) + "\n")
    peer_password = _secret()
    for host in SENTINEL_HOSTS:
        folder = stage.root / host
        folder.mkdir(exist_ok=True)
        lines = [f"bind {topo.address(host)} 127.0.0.1", f"port {SENTINEL_PORT}",
                 f"dir {folder}", f"logfile {folder / 'sentinel.log'}",
                 f"sentinel monitor {MASTER} {primary} {REDIS_PORT} 2",
                 f"sentinel down-after-milliseconds {MASTER} 2000",
                 f"sentinel failover-timeout {MASTER} 10000",
                 f"sentinel parallel-syncs {MASTER} 1",
                 f"sentinel auth-user {MASTER} default",
                 f"sentinel auth-pass {MASTER} {stage.admin_password}",
                 f"sentinel sentinel-user {SENTINEL_PEER_USER}",
                 f"sentinel sentinel-pass {peer_password}",
                 "user default off",
                 f"user {SENTINEL_PEER_USER} on >{peer_password} ~* &* +@all",
                 f"user admin on >{stage.admin_password} ~* &* +@all"]
        lines += [f"user {name} on >{stage.passwords[role]} ~* &* +@all"
                  for role, name in USERS.items()]
        _private(folder / "sentinel.conf", "\n".join(lines) + "\n")
