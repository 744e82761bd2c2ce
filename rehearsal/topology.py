"""The hosts of a round: Linux network namespaces on one bridge, with their addresses, their
``/etc/hosts`` and the partitions between them.

Every name a round creates starts with its prefix (``rh<run id>``): the namespaces
``<prefix>-<host>`` and ``<prefix>-bridge``, the link ``<prefix>c`` that lets the controller (this
process, in the root namespace) reach the hosts, and ``/etc/netns/<prefix>-<host>/``.
:func:`cleanup` removes whatever carries a prefix, so a round killed outright leaves nothing a
later ``python -m rehearsal cleanup`` cannot find. Partitions are per-peer ``blackhole``
routes on both ends (no netem or iptables here): packets vanish, as on a cut link.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Every round's names start with this (then the run id).
PREFIX = "rh"
NETNS_ETC = Path("/etc/netns")
GATEWAY_NAME = "mapi.alipay.com"
#: where a proxied host's TCP proxy to the gateway listens (its own loopback)
PROXY_ADDRESS = "127.0.0.2"
#: The hosts of a round, in the order their addresses are given (.11, .12...).
HOSTS: tuple[str, ...] = (
    "gateway", "redis1", "redis2", "redis3", "sentinel1", "sentinel2", "sentinel3",
    "worker1", "worker2", "worker3", "producer", "operator",
)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raises CalledProcessError with ip's message when ``check``."""
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    netns: str


class Topology:
    """The namespaces of one round (:meth:`build` makes them, :meth:`teardown` removes them)."""

    def __init__(self, run_id: str, *, subnet: int, hosts: Iterable[str] = HOSTS,
                 proxied: Iterable[str] = ()) -> None:
        """``proxied`` hosts reach the gateway through a proxy on their own loopback
        (:data:`PROXY_ADDRESS`): their ``/etc/hosts`` resolves the gateway's name there."""
        self.prefix = f"{PREFIX}{run_id}"
        self.subnet = f"10.77.{subnet}"
        self.bridge_ns = f"{self.prefix}-bridge"
        self.control_link = f"{self.prefix}c"
        self.control_address = f"{self.subnet}.1"
        self.hosts = {name: Host(name, f"{self.subnet}.{11 + i}", f"{self.prefix}-{name}")
                      for i, name in enumerate(hosts)}
        self.proxied = frozenset(proxied)
        #: blackhole routes in place: (netns, address)
        self._cuts: set[tuple[str, str]] = set()

    def address(self, host: str) -> str:
        return self.hosts[host].address

    def by_address(self) -> dict[str, str]:
        return {h.address: h.name for h in self.hosts.values()}

    def build(self) -> None:
        """The bridge, a veth per host (``eth0`` there), the controller's link, ``/etc/hosts``."""
        ip("netns", "add", self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        ip("-n", self.bridge_ns, "link", "set", "lo", "up")
        for host in self.hosts.values():
            ip("netns", "add", host.netns)
            peer = f"v-{host.name}"
            ip("-n", self.bridge_ns, "link", "add", peer, "type", "veth", "peer", "name",
               "eth0", "netns", host.netns)
            ip("-n", self.bridge_ns, "link", "set", peer, "master", "br0", "up")
            ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            ip("-n", host.netns, "link", "set", "eth0", "up")
            ip("-n", host.netns, "link", "set", "lo", "up")
            self._write_hosts_file(host)
        ip("link", "add", self.control_link, "type", "veth", "peer", "name", "v-control",
           "netns", self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "set", "v-control", "master", "br0", "up")
        ip("addr", "add", f"{self.control_address}/24", "dev", self.control_link)
        ip("link", "set", self.control_link, "up")

    def _write_hosts_file(self, host: Host) -> None:
        folder = NETNS_ETC / host.netns
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", f"127.0.1.1 {host.name}"]
        lines += [f"{h.address} {h.name}" for h in self.hosts.values() if h is not host]
        if host.name in self.proxied:
            lines.append(f"{PROXY_ADDRESS} {GATEWAY_NAME}")
        elif "gateway" in self.hosts:
            lines.append(f"{self.address('gateway')} {GATEWAY_NAME}")
        (folder / "hosts").write_text("\n".join(lines) + "\n", encoding="utf-8")

    # -- partitions ------------------------------------------------------------------------

    def cut(self, a: str, b: str) -> None:
        """No packet between hosts ``a`` and ``b`` (both ends), until :meth:`heal`."""
        for here, there in ((a, b), (b, a)):
            key = (self.hosts[here].netns, self.address(there))
            if key not in self._cuts:
                ip("-n", key[0], "route", "add", "blackhole", f"{key[1]}/32")
                self._cuts.add(key)

    def heal(self, a: str, b: str) -> None:
        for here, there in ((a, b), (b, a)):
            key = (self.hosts[here].netns, self.address(there))
            if key in self._cuts:
                ip("-n", key[0], "route", "del", "blackhole", f"{key[1]}/32", check=False)
                self._cuts.discard(key)

    def heal_all(self) -> None:
        for netns, address in list(self._cuts):
            ip("-n", netns, "route", "del", "blackhole", f"{address}/32", check=False)
        self._cuts.clear()

    # -- processes -------------------------------------------------------------------------

    def exec_prefix(self, host: str) -> list[str]:
        """The command prefix that runs a program on ``host``."""
        return ["ip", "netns", "exec", self.hosts[host].netns]

    def pids(self, host: str) -> list[int]:
        return netns_pids(self.hosts[host].netns)

    def kill_host(self, host: str) -> int:
        """SIGKILL every process in the host's namespace; returns how many."""
        return kill_netns(self.hosts[host].netns)

    def teardown(self) -> None:
        cleanup(self.prefix)


def netns_pids(netns: str) -> list[int]:
    found = ip("netns", "pids", netns, check=False)
    return [int(p) for p in found.stdout.split()]


def kill_netns(netns: str) -> int:
    pids = netns_pids(netns)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def ours(prefix: str) -> list[str]:
    """The namespaces whose names carry ``prefix`` (a round's, or every round's with PREFIX)."""
    listed = ip("netns", "list", check=False).stdout.split("\n")
    names = [line.split()[0] for line in listed if line.strip()]
    return [n for n in names if n.startswith(prefix) and "-" in n]


def leftovers(prefix: str = PREFIX) -> dict[str, list[str]]:
    """What carries ``prefix``: namespaces, root-namespace links, /etc/netns folders, processes
    in those namespaces."""
    links = [line.split(":")[1].strip().split("@")[0]
             for line in ip("-o", "link", "show", check=False).stdout.splitlines()
             if line.count(":") >= 2]
    namespaces = ours(prefix)
    return {
        "namespaces": namespaces,
        "links": [name for name in links if name.startswith(prefix) and name.endswith("c")],
        "etc": sorted(p.name for p in NETNS_ETC.glob(f"{prefix}*-*")) if NETNS_ETC.exists()
        else [],
        "processes": [str(pid) for ns in namespaces for pid in netns_pids(ns)],
    }


def cleanup(prefix: str = PREFIX) -> dict[str, list[str]]:
    """Kill every process in the namespaces carrying ``prefix``, delete them, their links and
    /etc/netns folders. Returns what was there."""
    found = leftovers(prefix)
    for netns in found["namespaces"]:
        kill_netns(netns)
    for netns in found["namespaces"]:
        ip("netns", "del", netns, check=False)
    for link in found["links"]:
        ip("link", "del", link, check=False)
    for name in found["etc"]:
        shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
    return found

