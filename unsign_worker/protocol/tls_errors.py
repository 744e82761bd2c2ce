"""TLS failures in words an operator understands, pure: the gateway client's audit reasons and
``check-config --probe`` both name a failed handshake or a cut connection with
:func:`describe_tls_failure`.

OpenSSL reports what went wrong as a verification code (a certificate) or a reason name (the
handshake); the exception that carries them is usually buried under urllib3's and requests'
wrappers, so :func:`find_ssl_error` looks for it through causes, contexts, ``reason`` and
``args``. Nothing here reads a URL or a body: only codes and reason names are kept.
"""

from __future__ import annotations

import ssl

#: OpenSSL's X509_V_ERR_* codes, grouped by what the operator should do about them.
_VERIFY_CODES: dict[int, str] = {
    9: "the gateway's certificate is not valid yet (check this host's clock)",
    10: "the gateway's certificate has expired",
    18: "the gateway's certificate is self-signed and not trusted",
    19: "the gateway's certificate chain ends in a CA that is not trusted "
        "(ALIPAY_CA_BUNDLE, else the default trust store)",
    20: "the gateway's certificate is not signed by a trusted CA "
        "(ALIPAY_CA_BUNDLE, else the default trust store)",
    21: "the gateway's certificate is not signed by a trusted CA "
        "(ALIPAY_CA_BUNDLE, else the default trust store)",
    23: "the gateway's certificate has been revoked",
    62: "the gateway's certificate is for another host name",
    64: "the gateway's certificate is for another IP address",
}
#: OpenSSL reason names of a handshake that failed on the protocol version.
_OLD_PROTOCOL = ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION",
                 "NO_PROTOCOLS_AVAILABLE", "VERSION_TOO_LOW", "TLSV1_ALERT_INSUFFICIENT_SECURITY")
#: How many nested exceptions :func:`find_ssl_error` looks through at most.
_MAX_DEPTH = 12


def find_ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The :class:`ssl.SSLError` behind ``exc`` (itself, its cause or context, urllib3's
    ``reason``, an argument), or None."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < _MAX_DEPTH:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *current.args]
        todo.extend(e for e in nested if isinstance(e, BaseException))
    return None


def describe_tls_failure(exc: BaseException, *, in_handshake: bool = False) -> str | None:
    """What went wrong with TLS in ``exc``, for an operator; None when no TLS error is in it.

    ``in_handshake``: the failure came before any byte of a request was sent. A server that
    refuses every version and cipher offered often closes without an alert, so an end of file
    there most likely means an outdated server."""
    error = find_ssl_error(exc)
    if error is None:
        return None
    if isinstance(error, ssl.SSLCertVerificationError):
        code = getattr(error, "verify_code", None)
        known = _VERIFY_CODES.get(code) if isinstance(code, int) else None
        if known:
            return known
        message = getattr(error, "verify_message", None) or ""
        return f"certificate verification failed{': ' + message if message else ''}"
    reason = str(getattr(error, "reason", "") or "")
    if reason in _OLD_PROTOCOL:
        return ("the gateway offers only an outdated TLS version (TLS 1.2 or newer is "
                f"required; {reason})")
    if reason == "WRONG_VERSION_NUMBER":
        return "the gateway does not speak TLS on this port (WRONG_VERSION_NUMBER)"
    if isinstance(error, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
        if in_handshake:
            return ("the gateway closed the connection during the TLS handshake (it may offer "
                    "only an outdated TLS version or cipher; TLS 1.2 or newer is required)")
        return "the connection was cut in the middle of TLS (unexpected EOF)"
    if reason:
        return f"TLS error {reason}"
    return f"TLS error {type(error).__name__}"
