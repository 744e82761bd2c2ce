"""The rules of one job as a producer gives it: its business parameters and its reference.

Shared by the clients (which check a job before it leaves the application) and the inbox
(which checks every entry again: a producer's check is a courtesy, never trusted).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from unsign_worker.protocol.exceptions import FieldError
from unsign_worker.protocol.params import UnsignRequest
from unsign_worker.store.job import MAX_REFERENCE_LENGTH


def reference_errors(reference: str) -> list[FieldError]:
    """The rules of a producer reference: at most 128 characters, printable, no edge spaces."""
    errors: list[FieldError] = []
    if len(reference) > MAX_REFERENCE_LENGTH:
        errors.append(FieldError("reference", "max_length",
                                 f"is longer than {MAX_REFERENCE_LENGTH} characters"))
    # fast path: printable ASCII has no control characters (campaigns check 100,000s of these)
    if not (reference.isascii() and reference.isprintable()) and any(
            unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in reference):
        errors.append(FieldError("reference", "no_control_chars", "contains control characters"))
    if not reference.isascii() and any(unicodedata.category(ch) == "Cs" for ch in reference):
        # a lone surrogate (JSON's "\ud800") cannot be stored or hashed as UTF-8
        errors.append(FieldError("reference", "unicode", "is not valid Unicode text (it holds "
                                 "a lone surrogate)"))
    if reference != reference.strip():
        errors.append(FieldError("reference", "no_edge_whitespace",
                                 "has leading or trailing spaces"))
    return errors


def validated_params(params: dict[str, Any], *, charset: str) -> dict[str, str]:
    """The non-empty business parameters of a valid job. Raises: ValidationError."""
    request = UnsignRequest.from_mapping(params).validate(charset=charset)
    return request.business_params()
