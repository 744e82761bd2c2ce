"""The tests' TLS material: a root CA, an intermediate CA and a server certificate for
``localhost`` (and 127.0.0.1, ::1) issued by the intermediate, as a real gateway's chain is.

Made with ``trustme``, never with the product's own certificate code (a witness, not a mirror),
once per test process, in a temporary folder removed at exit. Every emulator the tests start
serves this chain unless a test asks for plain HTTP; workers and clients trust ``ca_file``.
"""

from __future__ import annotations

import atexit
import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import trustme

#: The host name the tests' gateway URLs use (the certificate names it; the worker refuses IP
#: literals outside sandbox mode).
GATEWAY_HOST = "localhost"


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files, and the server context that serves the chain."""

    ca_file: Path
    chain_file: Path
    key_file: Path
    #: the CA that issued the server certificate (tests issue other certificates with it:
    #: expired, for another host...)
    issuer: trustme.CA = field(compare=False, repr=False)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.chain_file, self.key_file)
        return context


@cache
def gateway_pki() -> Pki:
    """The tests' PKI, made on first use."""
    folder = Path(tempfile.mkdtemp(prefix="unsign-test-pki-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    root = trustme.CA(organization_name="unsign-worker tests root")
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert(GATEWAY_HOST, "127.0.0.1", "::1")
    root.cert_pem.write_to_path(str(folder / "ca.pem"))
    with open(folder / "chain.pem", "wb") as out:
        for blob in leaf.cert_chain_pems:  # the leaf, then the intermediate
            out.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(folder / "key.pem"))
    return Pki(ca_file=folder / "ca.pem", chain_file=folder / "chain.pem",
               key_file=folder / "key.pem", issuer=intermediate)


def production_gateway_env(gateway_url: str) -> dict[str, str]:
    """What a worker needs to reach the tests' TLS gateway with production settings (no sandbox
    mode): the allowed host and the CA. Empty for a plain-HTTP (sandbox) gateway."""
    if not gateway_url.startswith("https://"):
        return {}
    return {"ALIPAY_GATEWAY_ALLOWED_HOSTS": GATEWAY_HOST,
            "ALIPAY_CA_BUNDLE": str(gateway_pki().ca_file)}


def gateway_settings(gateway_url: str) -> dict[str, object]:
    """``Settings`` fields to reach the tests' gateway at ``gateway_url``: over HTTPS production
    settings (no sandbox mode, the allowed host, the CA), over plain HTTP sandbox mode."""
    if not gateway_url.startswith("https://"):
        return {"gateway_url": gateway_url, "sandbox": True}
    return {"gateway_url": gateway_url, "sandbox": False,
            "gateway_allowed_hosts": (GATEWAY_HOST,), "ca_bundle": str(gateway_pki().ca_file)}
