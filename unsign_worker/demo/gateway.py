"""How the demo's processes reach its emulator: over TLS by default, as production does.

The demo keeps a sandbox PKI in ``<workdir>/tls`` (made on the first run, kept while valid, so
an ``ALIPAY_CA_BUNDLE`` exported once stays right), serves the emulator with it, and gives the
workers, Flower, the console and ``campaign run`` the settings a production worker behind a
private CA has: an ``https://`` URL naming ``localhost``, that host in
``ALIPAY_GATEWAY_ALLOWED_HOSTS``, the root in ``ALIPAY_CA_BUNDLE``, and no ``UNSIGN_SANDBOX``.
``--plain-http`` is the sandbox exception: plain HTTP to a loopback emulator, sandbox mode.

See :mod:`unsign_worker.cli.demo_cmds` for the demo itself.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from unsign_worker.demo.processes import DemoError

#: The folder of the demo's sandbox PKI, under its workdir.
TLS_DIR = "tls"
#: The emulator's ready line: its gateway URL and partner.
READY_PATTERN = r"emulator: serving (https?://\S+) for partner (\d+)"


@dataclass(frozen=True)
class Trust:
    """The sandbox PKI the emulator serves (None of it for plain HTTP)."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    #: True when made by this run, False when kept from an earlier one
    made: bool


def prepare_tls(workdir: Path) -> Trust:
    """Make (or keep) the demo's sandbox PKI in ``workdir/tls``.

    Raises:
        DemoError: it cannot be written (the message names the folder).
    """
    from unsign_worker.emulator import EmulatorConfigError, make_sandbox_pki

    try:
        pki = make_sandbox_pki(workdir / TLS_DIR)
    except EmulatorConfigError as exc:
        raise DemoError(f"TLS: {exc}") from None
    return Trust(pki.ca_file, pki.cert_file, pki.key_file, pki.made)


def emulator_args(trust: Trust | None) -> list[str]:
    """The emulator's options to serve HTTPS with ``trust`` (none: plain HTTP)."""
    if trust is None:
        return []
    return ["--tls-cert", str(trust.cert_file), "--tls-key", str(trust.key_file)]


@dataclass(frozen=True)
class GatewayLink:
    """The emulator's gateway URL and what a process of the demo needs to use it."""

    url: str
    partner: str
    trust: Trust | None

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme != ("https" if self.trust else "http"):
            raise DemoError(f"the emulator serves {self.url}, not what the demo asked for "
                            f"({'HTTPS' if self.trust else 'plain HTTP'})")

    def env(self) -> dict[str, str]:
        """The gateway settings of the workers, Flower, the console and ``campaign run``."""
        if self.trust is None:
            return {"ALIPAY_GATEWAY_URL": self.url, "UNSIGN_SANDBOX": "1"}
        return {"ALIPAY_GATEWAY_URL": self.url,
                "ALIPAY_GATEWAY_ALLOWED_HOSTS": urlsplit(self.url).hostname or "",
                "ALIPAY_CA_BUNDLE": str(self.trust.ca_file),
                "UNSIGN_SANDBOX": ""}  # off, even where a .env in the folder turns it on

    def describe(self) -> str:
        """The demo's ``tls`` step: how the gateway is reached, and how to trust it."""
        if self.trust is None:
            return (f"off (--plain-http): {self.url} in plain HTTP, the workers in sandbox "
                    "mode (UNSIGN_SANDBOX=1)")
        kept = "made now" if self.trust.made else "kept from an earlier run"
        return (f"{self.url}, certificate from a private CA ({kept}): "
                f"export ALIPAY_CA_BUNDLE={shlex.quote(str(self.trust.ca_file))}")

    def traffic(self) -> str | None:
        """What the emulator served, from its own counters; None if it cannot tell."""
        from unsign_worker.emulator import EmulatorAdmin, EmulatorAdminError

        admin = EmulatorAdmin(self.url, ca_bundle=str(self.trust.ca_file) if self.trust else None)
        try:
            stats = admin.stats(per_agreement=False)
        except EmulatorAdminError:
            return None
        finally:
            admin.close()
        how = "over TLS" if self.trust else "in plain HTTP"
        connections = int(stats["connections_opened"]) - 1  # not this call's own
        return f"{stats['requests']} gateway requests on {connections} connections, {how}"
