"""The sandbox PKI (root CA -> intermediate CA -> server certificate) and the server context:
the chain's structure and extensions, the key's mode, files kept or made anew, and errors that
name the file."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.tls import (
    CA_FILE,
    CERT_FILE,
    DEFAULT_HOSTS,
    KEY_FILE,
    SandboxPki,
    make_sandbox_pki,
    server_ssl_context,
)


@pytest.fixture
def pki(tmp_path: Path) -> SandboxPki:
    return make_sandbox_pki(tmp_path / "tls")


def certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def contents(pki: SandboxPki) -> tuple[bytes, bytes, bytes]:
    return pki.ca_file.read_bytes(), pki.cert_file.read_bytes(), pki.key_file.read_bytes()


def alt_names(certificate: x509.Certificate) -> x509.SubjectAlternativeName:
    return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_the_pki_is_three_files_in_the_directory_given(tmp_path, pki):
    assert pki.made
    assert (pki.ca_file, pki.cert_file, pki.key_file) == (
        tmp_path / "tls" / CA_FILE, tmp_path / "tls" / CERT_FILE, tmp_path / "tls" / KEY_FILE)
    assert len(certificates(pki.ca_file)) == 1  # the root alone: what a worker trusts
    assert len(certificates(pki.cert_file)) == 2  # what the server sends: leaf, intermediate


def test_the_server_certificate_is_signed_by_the_intermediate_and_that_by_the_root(pki):
    [root] = certificates(pki.ca_file)
    leaf, intermediate = certificates(pki.cert_file)
    root.verify_directly_issued_by(root)
    intermediate.verify_directly_issued_by(root)
    leaf.verify_directly_issued_by(intermediate)
    assert leaf.issuer == intermediate.subject and intermediate.issuer == root.subject


def test_each_certificate_has_the_constraints_and_key_usages_of_its_place(pki):
    [root] = certificates(pki.ca_file)
    leaf, intermediate = certificates(pki.cert_file)

    def ext(certificate: x509.Certificate, kind: type) -> x509.Extension:
        return certificate.extensions.get_extension_for_class(kind)

    for ca, path_length in ((root, 1), (intermediate, 0)):
        constraints = ext(ca, x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca
        assert constraints.value.path_length == path_length
        usage = ext(ca, x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    leaf_constraints = ext(leaf, x509.BasicConstraints)
    assert leaf_constraints.critical and not leaf_constraints.value.ca
    leaf_usage = ext(leaf, x509.KeyUsage)
    assert leaf_usage.critical and leaf_usage.value.digital_signature
    assert not leaf_usage.value.key_cert_sign
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_each_authority_key_identifier_is_its_issuers_subject_key_identifier(pki):
    [root] = certificates(pki.ca_file)
    leaf, intermediate = certificates(pki.cert_file)
    for subject, issuer in ((leaf, intermediate), (intermediate, root), (root, root)):
        issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        aki = subject.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        assert aki.value.key_identifier == issuer_ski.value.digest


def test_host_names_are_dns_names_and_addresses_are_ip_addresses(pki):
    names = alt_names(certificates(pki.cert_file)[0])
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert DEFAULT_HOSTS == ("localhost", "127.0.0.1", "::1")


def test_the_private_key_is_readable_by_its_owner_only(pki):
    assert stat.S_IMODE(pki.key_file.stat().st_mode) == 0o600


def test_valid_files_for_the_same_hosts_are_kept_not_made_again(tmp_path, pki):
    before = contents(pki)
    again = make_sandbox_pki(tmp_path / "tls", hosts=("::1", "LOCALHOST", "127.0.0.1"))
    assert not again.made
    assert (again.ca_file, again.cert_file, again.key_file) == (
        pki.ca_file, pki.cert_file, pki.key_file)
    assert contents(again) == before


def test_other_hosts_make_the_whole_pki_anew(tmp_path, pki):
    before = contents(pki)
    again = make_sandbox_pki(tmp_path / "tls", hosts=("localhost", "gateway.test", "10.0.0.5"))
    assert again.made
    assert again.ca_file.read_bytes() != before[0]  # a new root: trust it again
    names = alt_names(certificates(again.cert_file)[0])
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "gateway.test"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]


def test_files_that_expire_within_a_day_are_made_anew(tmp_path):
    first = make_sandbox_pki(tmp_path, days=1)
    before = contents(first)
    again = make_sandbox_pki(tmp_path, days=1)
    assert again.made and contents(again) != before


def _delete_the_chain(pki: SandboxPki, other: SandboxPki) -> None:
    pki.cert_file.unlink()


def _spoil_the_root(pki: SandboxPki, other: SandboxPki) -> None:
    pki.ca_file.write_text("not a certificate")


def _put_another_key(pki: SandboxPki, other: SandboxPki) -> None:
    pki.key_file.write_bytes(other.key_file.read_bytes())


def _put_another_root(pki: SandboxPki, other: SandboxPki) -> None:
    pki.ca_file.write_bytes(other.ca_file.read_bytes())


@pytest.mark.parametrize("damage", [_delete_the_chain, _spoil_the_root, _put_another_key,
                                    _put_another_root])
def test_a_missing_or_mismatched_file_makes_the_whole_pki_anew(tmp_path, pki, damage):
    other = make_sandbox_pki(tmp_path / "other")
    damage(pki, other)
    again = make_sandbox_pki(tmp_path / "tls")
    assert again.made
    [root] = certificates(again.ca_file)
    leaf, intermediate = certificates(again.cert_file)
    intermediate.verify_directly_issued_by(root)
    leaf.verify_directly_issued_by(intermediate)
    server_ssl_context(again.cert_file, again.key_file)  # the key is the certificate's


@pytest.mark.parametrize("hosts", [(), ("bad name",), ("bücher.example",), ("",)])
def test_a_host_the_certificate_cannot_name_is_refused(tmp_path, hosts):
    with pytest.raises(EmulatorConfigError):
        make_sandbox_pki(tmp_path, hosts=hosts)
    assert not (tmp_path / KEY_FILE).exists()


def test_a_validity_below_one_day_is_refused(tmp_path):
    with pytest.raises(EmulatorConfigError, match="days"):
        make_sandbox_pki(tmp_path, days=0)


def test_a_directory_that_cannot_be_made_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EmulatorConfigError, match=str(blocker / "tls")):
        make_sandbox_pki(blocker / "tls")


def test_the_server_context_loads_the_chain_and_asks_for_tls_1_2_at_least(pki):
    context = server_ssl_context(pki.cert_file, pki.key_file)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.protocol == ssl.PROTOCOL_TLS_SERVER


def test_a_missing_certificate_file_is_an_error_naming_it(tmp_path, pki):
    missing = tmp_path / "nowhere" / "gateway.pem"
    with pytest.raises(EmulatorConfigError) as info:
        server_ssl_context(missing, pki.key_file)
    assert str(missing) in str(info.value) and "TLS certificate" in str(info.value)


def test_a_file_that_is_not_a_certificate_is_an_error_naming_it(pki):
    with pytest.raises(EmulatorConfigError) as info:
        server_ssl_context(pki.key_file, pki.key_file, cert_label="--tls-cert")
    assert str(info.value).startswith(f"--tls-cert '{pki.key_file}': not a PEM certificate")


def test_a_file_that_is_not_a_key_is_an_error_naming_it(pki):
    with pytest.raises(EmulatorConfigError) as info:
        server_ssl_context(pki.cert_file, pki.ca_file, key_label="--tls-key")
    assert str(info.value).startswith(f"--tls-key '{pki.ca_file}': not an unencrypted PEM")


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path, pki):
    other = make_sandbox_pki(tmp_path / "other")
    with pytest.raises(EmulatorConfigError) as info:
        server_ssl_context(pki.cert_file, other.key_file)
    assert f"not the key of the first certificate in '{pki.cert_file}'" in str(info.value)
