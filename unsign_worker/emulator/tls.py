"""The emulator's TLS material: a sandbox PKI made with ``cryptography``, and the server context.

:func:`make_sandbox_pki` writes a real chain into one directory: a root CA (``ca.pem``, the one
file a worker trusts, through ``ALIPAY_CA_BUNDLE``), an intermediate CA that signs the server
certificate, and that certificate for the emulator's host names (``gateway.pem`` holds it and
the intermediate, what the server sends; ``gateway-key.pem`` its private key, mode 0600). The
CA keys are never written: a PKI that has to change is made anew, root included. Files that
are still valid for the same hosts are kept, so a demo's trust survives its runs.

:func:`server_ssl_context` loads a chain and its key for serving (TLS 1.2 at least).

Keys are ECDSA P-256 rather than RSA 2048: as strong for a sandbox, made in a millisecond rather
than tens of them (three keys per PKI), smaller certificates, and a cheaper server handshake
(an ECDSA signature costs the server a fraction of an RSA-2048 one), which keeps the emulator
out of the way when benchmarks open many connections. Every TLS 1.2+ client accepts it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from unsign_worker.emulator.errors import EmulatorConfigError

#: The names a sandbox certificate is for unless told otherwise: the loopback ones.
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
#: How long the certificates made are valid, days (a sandbox PKI is cheap to make again).
DEFAULT_VALIDITY_DAYS = 365
#: Certificates start this long before they are made, so a clock slightly behind accepts them.
BACKDATE = datetime.timedelta(hours=1)
#: Files that expire within this long are made anew rather than kept.
RENEW_WITHIN = datetime.timedelta(days=1)
#: The file a worker trusts (the root CA alone).
CA_FILE = "ca.pem"
#: The chain the server sends: its certificate, then the intermediate CA.
CERT_FILE = "gateway.pem"
#: The server certificate's private key (PKCS#8 PEM, unencrypted, mode 0600).
KEY_FILE = "gateway-key.pem"
#: The lowest TLS version the emulator serves.
MINIMUM_TLS_VERSION = ssl.TLSVersion.TLSv1_2
_ORGANIZATION = "unsign-worker emulator (sandbox, never for production)"
_CURVE = ec.SECP256R1()
_HASH = hashes.SHA256()

Host = x509.DNSName | x509.IPAddress


@dataclass(frozen=True)
class SandboxPki:
    """The files of a sandbox PKI (absolute paths)."""

    #: The root CA certificate: point ``ALIPAY_CA_BUNDLE`` at it.
    ca_file: Path
    #: The server's chain (its certificate, then the intermediate CA).
    cert_file: Path
    #: The server certificate's private key.
    key_file: Path
    #: True when the files were written now, False when valid ones were kept.
    made: bool = True


def _general_name(host: str) -> Host:
    """``127.0.0.1`` / ``::1`` / ``[::1]`` -> an IP address; anything else a DNS name.

    Raises:
        EmulatorConfigError: an empty or non-ASCII name (give an IDN as its xn-- form).
    """
    name = host.strip().lower()
    try:
        return x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    if not name or not name.isascii() or any(c.isspace() or c in "/[]" for c in name):
        raise EmulatorConfigError(f"--host {host!r}: not a host name or IP address the "
                                  "certificate can name (give an IDN in its xn-- form)")
    return x509.DNSName(name)


def _wanted(hosts: Iterable[str]) -> list[Host]:
    names = list(dict.fromkeys(_general_name(host) for host in hosts))
    if not names:
        raise EmulatorConfigError("hosts: the certificate must name at least one host")
    return names


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(*, subject: str, key: ec.EllipticCurvePrivateKey,
                 issuer: x509.Certificate | None, issuer_key: ec.EllipticCurvePrivateKey,
                 path_length: int | None, days: int, now: datetime.datetime,
                 hosts: Sequence[Host] = ()) -> x509.Certificate:
    """A certificate for ``key``; a CA when ``path_length`` is not None, else a server's."""
    public = key.public_key()
    is_ca = path_length is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer is not None else _name(subject))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=not is_ca, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=is_ca, crl_sign=is_ca,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    )
    if not is_ca:
        builder = (builder
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                  critical=False)
                   .add_extension(x509.SubjectAlternativeName(list(hosts)), critical=False))
    return builder.sign(issuer_key, _HASH)


def _pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with ``mode`` from the start, replacing it in one step."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _lasts(certificate: x509.Certificate, now: datetime.datetime) -> bool:
    """Valid now, and for longer than :data:`RENEW_WITHIN`."""
    return (certificate.not_valid_before_utc <= now
            and certificate.not_valid_after_utc - RENEW_WITHIN > now)


def _still_valid(pki: SandboxPki, hosts: Sequence[Host], now: datetime.datetime) -> bool:
    """True when the three files form a chain for exactly ``hosts`` that stays valid a while."""
    try:
        roots = x509.load_pem_x509_certificates(pki.ca_file.read_bytes())
        chain = x509.load_pem_x509_certificates(pki.cert_file.read_bytes())
        key = serialization.load_pem_private_key(pki.key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    if len(roots) != 1 or len(chain) != 2:
        return False
    root, (leaf, intermediate) = roots[0], chain
    try:
        root.verify_directly_issued_by(root)
        intermediate.verify_directly_issued_by(root)
        leaf.verify_directly_issued_by(intermediate)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    return (key.public_key() == leaf.public_key()
            and set(names) == set(hosts)
            and all(_lasts(c, now) for c in (root, intermediate, leaf)))


def make_sandbox_pki(directory: str | os.PathLike[str], *, hosts: Iterable[str] = DEFAULT_HOSTS,
                     days: int = DEFAULT_VALIDITY_DAYS) -> SandboxPki:
    """Write (or keep) a root CA, an intermediate CA and a server certificate for ``hosts``.

    ``hosts`` are DNS names or IP addresses (each becomes a subjectAltName of its type). Files
    already in ``directory`` are kept when they form a chain for the same hosts, valid for more
    than :data:`RENEW_WITHIN`; otherwise all three are made anew (a new root: trust it again).
    The directory is created (mode 0700) if needed.

    Raises:
        EmulatorConfigError: a host the certificate cannot name, ``days`` below 1, or the
            directory cannot be written (the message names it).
    """
    wanted = _wanted(hosts)
    if days < 1:
        raise EmulatorConfigError(f"days: {days} is not a validity; give at least 1")
    folder = Path(directory).absolute()
    pki = SandboxPki(ca_file=folder / CA_FILE, cert_file=folder / CERT_FILE,
                     key_file=folder / KEY_FILE)
    now = datetime.datetime.now(datetime.UTC)
    if _still_valid(pki, wanted, now):
        return SandboxPki(pki.ca_file, pki.cert_file, pki.key_file, made=False)
    root_key, intermediate_key, key = (ec.generate_private_key(_CURVE) for _ in range(3))
    root = _certificate(subject="unsign-worker emulator sandbox root CA", key=root_key,
                        issuer=None, issuer_key=root_key, path_length=1, days=days, now=now)
    intermediate = _certificate(subject="unsign-worker emulator sandbox intermediate CA",
                                key=intermediate_key, issuer=root, issuer_key=root_key,
                                path_length=0, days=days, now=now)
    first = wanted[0].value
    leaf = _certificate(subject=str(first), key=key, issuer=intermediate,
                        issuer_key=intermediate_key, path_length=None, days=days, now=now,
                        hosts=wanted)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write(pki.key_file, key_pem, 0o600)
        _write(pki.cert_file, _pem(leaf, intermediate), 0o644)
        _write(pki.ca_file, _pem(root), 0o644)
    except OSError as exc:
        raise EmulatorConfigError(f"cannot write the sandbox PKI in {str(folder)!r}: "
                                  f"{exc.strerror}") from None
    return pki


def _read(path: str | os.PathLike[str], label: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise EmulatorConfigError(f"{label} {str(path)!r}: cannot read: {exc.strerror}") from None


def server_ssl_context(cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str], *,
                       cert_label: str = "TLS certificate", key_label: str = "TLS key"
                       ) -> ssl.SSLContext:
    """A server context (TLS 1.2 at least) serving the chain in ``cert_file`` (the server's
    certificate first, then its intermediates) with the private key in ``key_file``.

    ``cert_label`` and ``key_label`` name the files' source in errors (the CLI gives its
    option or variable).

    Raises:
        EmulatorConfigError: a file cannot be read, holds no PEM certificate or unencrypted
            private key, or the key is not the certificate's; the message names the file.
    """
    cert_pem, key_pem = _read(cert_file, cert_label), _read(key_file, key_label)
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise EmulatorConfigError(f"{cert_label} {str(cert_file)!r}: not a PEM certificate "
                                  "chain") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise EmulatorConfigError(f"{key_label} {str(key_file)!r}: not an unencrypted PEM "
                                  "private key") from None
    if key.public_key() != chain[0].public_key():
        raise EmulatorConfigError(f"{key_label} {str(key_file)!r}: not the key of the first "
                                  f"certificate in {str(cert_file)!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_TLS_VERSION
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise EmulatorConfigError(f"{cert_label} {str(cert_file)!r}: cannot serve it with "
                                  f"{str(key_file)!r}: {exc}") from None
    return context
