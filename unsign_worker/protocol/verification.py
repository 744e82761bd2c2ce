"""Refuse to start without the means to verify the gateway's answers.

Section 7.2 of the technical document: answers are verified, with the MD5 key or with Alipay's
RSA/DSA public key. A process that sends to the gateway without that key could only take answers
on trust (a forged ``is_success=T`` would read as an unsign), so it refuses to start with ONE
line naming the variable. The parser refuses an unchecked success anyway; this makes the
misconfiguration visible at start-up instead of as a queue of retries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from unsign_worker.protocol.exceptions import ConfigError

if TYPE_CHECKING:  # the client imports this module and must not load the signing code
    from unsign_worker.protocol.signing import Signer

#: Sign types whose answers are verified with Alipay's public key.
ASYMMETRIC = ("RSA", "DSA")


def _missing_public_key(sign_type: str) -> ConfigError:
    return ConfigError(f"ALIPAY_PUBLIC_KEY_FILE: not set, but ALIPAY_SIGN_TYPE is {sign_type}: "
                       f"Alipay's {sign_type} public key is required to verify the gateway's "
                       "answers")


def require_verifier(signer: Signer) -> None:
    """Raise ConfigError unless ``signer`` can verify answers (the worker's start-up check)."""
    if signer.can_verify:
        return
    if signer.sign_type in ASYMMETRIC:
        raise _missing_public_key(signer.sign_type)
    raise ConfigError("ALIPAY_KEY: not set, but ALIPAY_SIGN_TYPE is MD5: the MD5 key is "
                      "required to sign requests and verify the gateway's answers")


def require_public_key_in_env(env: Mapping[str, str] | None = None) -> None:
    """The same check for a process that reads only the environment (the Python client).

    With ``ALIPAY_SIGN_TYPE`` RSA or DSA, ``ALIPAY_PUBLIC_KEY_FILE`` must name a readable
    public key of that type. Raises ConfigError naming the variable.
    """
    env = os.environ if env is None else env
    sign_type = (env.get("ALIPAY_SIGN_TYPE") or "").strip()
    if sign_type not in ASYMMETRIC:
        return
    path = (env.get("ALIPAY_PUBLIC_KEY_FILE") or "").strip()
    if not path:
        raise _missing_public_key(sign_type)
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"ALIPAY_PUBLIC_KEY_FILE: cannot read {path!r}: {exc.strerror}"
                          ) from None
    from unsign_worker.protocol.signing import (
        make_signer,  # only here: RSA/DSA named in the environment
    )

    require_verifier(make_signer(sign_type, public_key_pem=pem))
