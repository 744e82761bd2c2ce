"""The request path without HTTP: raw bytes in, answer out (property tests of the invariants)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from unsign_worker.emulator.agreements import agreement_from_entry
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.process import process
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import Md5Signer, sign_params

PARTNER = "2088101568338364"
KEY = "0123456789abcdefghijklmnopqrstuv"
SIGNER = Md5Signer(KEY)

_LOGIN_CHARS = st.characters(codec="gbk", exclude_categories=("Cs", "Cc", "Cf", "Zs", "Zl",
                                                                 "Zp"))
LOGINS = st.text(_LOGIN_CHARS, min_size=3, max_size=40)


#: Twice the profile's examples: 200 in the full tier, 40 in the fast one.
EXAMPLES = 2 * settings.default.max_examples


def state_with(email: str) -> EmulatorState:
    agreement = agreement_from_entry({"id": "pp", "biz_type": "10004", "user_email": email},
                                     "x")
    return EmulatorState(build_config(partner=PARTNER, key=KEY), [agreement])


def params_for(email: str, charset: str) -> dict[str, str]:
    return sign_params({"service": "customer_unsign", "partner": PARTNER,
                        "_input_charset": charset, "biz_type": "10004", "user_email": email},
                       SIGNER, charset)


def answer(state: EmulatorState, params: dict[str, str], charset: str) -> str:
    body = urlencode(params, encoding=charset).encode("ascii")
    outcome = process(state, f"_input_charset={charset}".encode(), body)
    parsed = parse_response(outcome.body, verifier=SIGNER, charset=charset)
    return "T" if parsed.is_success else parsed.error


@settings(max_examples=EXAMPLES)
@given(email=LOGINS, charset=st.sampled_from(["utf-8", "gbk"]))
def test_any_valid_login_signed_in_its_charset_unsigns_its_agreement(email, charset):
    state = state_with(email)
    assert answer(state, params_for(email, charset), charset) == "T"
    assert state.book.agreements["pp"].status == "unsigned"


@settings(max_examples=EXAMPLES)
@given(email=LOGINS, other=LOGINS, charset=st.sampled_from(["utf-8", "gbk"]))
def test_a_value_changed_after_signing_never_passes(email, other, charset):
    state = state_with(email)
    params = params_for(email, charset)
    if other == email:
        return
    params["user_email"] = other
    assert answer(state, params, charset) == "ILLEGAL_SIGN"
    assert state.book.agreements["pp"].status == "signed"


@settings(max_examples=EXAMPLES)
@given(email=LOGINS)
def test_signing_the_url_encoded_value_never_passes_unless_encoding_changes_nothing(email):
    state = state_with(email)
    encoded = quote(email, safe="")
    params = params_for(encoded, "utf-8")
    params["user_email"] = email
    expected = "T" if encoded == email else "ILLEGAL_SIGN"
    assert answer(state, params, "utf-8") == expected
