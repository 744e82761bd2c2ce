"""TLS failures named for an operator (protocol/tls_errors.py), from the exceptions OpenSSL,
urllib3 and requests raise, however deeply wrapped."""

from __future__ import annotations

import ssl

import pytest
import requests
from urllib3.exceptions import MaxRetryError
from urllib3.exceptions import SSLError as Urllib3SSLError

from unsign_worker.protocol.tls_errors import describe_tls_failure, find_ssl_error


def verify_error(code: int, message: str = "x") -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_code = code
    error.verify_message = message
    return error


def reason_error(reason: str, kind: type[ssl.SSLError] = ssl.SSLError) -> ssl.SSLError:
    error = kind(1, f"[SSL: {reason}] ...")
    error.reason = reason
    return error


def wrapped(error: BaseException) -> BaseException:
    """As requests raises it: SSLError(MaxRetryError(reason=urllib3 SSLError(error)))."""
    inner = Urllib3SSLError(error)
    outer = MaxRetryError(None, "/gateway.do", reason=inner)  # type: ignore[arg-type]
    return requests.exceptions.SSLError(outer)


@pytest.mark.parametrize(("code", "words"), [
    (10, "the gateway's certificate has expired"),
    (9, "the gateway's certificate is not valid yet"),
    (62, "the gateway's certificate is for another host name"),
    (64, "the gateway's certificate is for another IP address"),
    (20, "the gateway's certificate is not signed by a trusted CA"),
    (19, "the gateway's certificate chain ends in a CA that is not trusted"),
    (18, "the gateway's certificate is self-signed and not trusted"),
])
def test_certificate_failures_are_named_by_their_verification_code(code: int, words: str) -> None:
    assert describe_tls_failure(verify_error(code)).startswith(words)
    assert describe_tls_failure(wrapped(verify_error(code))).startswith(words)


def test_an_unknown_verification_code_keeps_openssls_message() -> None:
    assert describe_tls_failure(verify_error(99, "odd")) == (
        "certificate verification failed: odd")


@pytest.mark.parametrize("reason", ["UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION",
                                    "NO_PROTOCOLS_AVAILABLE"])
def test_a_refused_protocol_version_is_named_outdated(reason: str) -> None:
    text = describe_tls_failure(wrapped(reason_error(reason)))
    assert text.startswith("the gateway offers only an outdated TLS version") and reason in text


def test_an_end_of_file_is_a_cut_connection_or_in_the_handshake_an_outdated_server() -> None:
    eof = reason_error("UNEXPECTED_EOF_WHILE_READING", ssl.SSLEOFError)
    assert describe_tls_failure(eof) == (
        "the connection was cut in the middle of TLS (unexpected EOF)")
    assert "closed the connection during the TLS handshake" in describe_tls_failure(
        eof, in_handshake=True)


def test_plain_http_on_a_tls_port_is_named() -> None:
    assert "does not speak TLS" in describe_tls_failure(reason_error("WRONG_VERSION_NUMBER"))


def test_anything_without_a_tls_error_is_not_described() -> None:
    assert describe_tls_failure(ConnectionResetError("reset")) is None
    assert find_ssl_error(requests.exceptions.ConnectionError(OSError("refused"))) is None


def test_a_cycle_of_causes_ends_the_search() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert find_ssl_error(a) is None
