"""The emulator's own request decoding (pure)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unsign_worker.emulator.charsets import codec_for
from unsign_worker.emulator.decode import decode_request, split_pairs


def test_pairs_are_split_on_ampersands_and_unquoted_once():
    assert split_pairs(b"a=1&b=x%2540y&c=&&d") == [
        (b"a", b"1"), (b"b", b"x%40y"), (b"c", b""), (b"d", b"")]


def test_plus_is_a_space_and_an_encoded_plus_is_a_plus():
    assert split_pairs(b"q=a+b%2Bc") == [(b"q", b"a b+c")]


def test_the_charset_is_read_from_the_query_string():
    decoded = decode_request(b"_input_charset=gbk", urlencode({"n": "中文"},
                                                               encoding="gbk").encode())
    assert decoded.charset == "gbk" and decoded.params["n"] == "中文"


def test_the_charset_is_read_from_the_body_too():
    body = urlencode({"_input_charset": "GBK", "n": "中文"}, encoding="gbk").encode()
    decoded = decode_request(b"", body)
    assert decoded.charset == "gbk" and decoded.params == {"_input_charset": "GBK", "n": "中文"}


@pytest.mark.parametrize("value", ["latin-1", "", "utf-16", "big5"])
def test_a_charset_the_gateway_does_not_know_decodes_to_no_codec(value):
    assert decode_request(f"_input_charset={value}".encode()).charset == ""


def test_a_missing_charset_decodes_to_no_codec():
    assert decode_request(b"a=1").charset == ""


def test_the_body_wins_over_the_query_string_and_order_of_first_appearance_is_kept():
    decoded = decode_request(b"a=1&_input_charset=utf-8", b"b=2&a=3")
    assert list(decoded.params.items()) == [("a", "3"), ("_input_charset", "utf-8"), ("b", "2")]


def test_bytes_invalid_in_the_declared_charset_are_replaced_not_refused():
    decoded = decode_request(b"_input_charset=utf-8&n=%FF")
    assert decoded.params["n"] == "\ufffd"


def test_a_value_url_encoded_twice_stays_encoded_once():
    wire = urlencode({"user_email": quote("a@b.com", safe="")})
    assert decode_request(wire.encode() + b"&_input_charset=utf-8").params["user_email"] == (
        "a%40b.com")


@pytest.mark.parametrize(("given_value", "codec"), [("UTF-8", "utf-8"), ("gb2312", "gb2312"),
                                                    (" gbk ", "gbk"), ("GB18030", "gb18030"),
                                                    ("utf8", ""), ("latin-1", "")])
def test_charset_names_are_matched_without_case(given_value, codec):
    assert codec_for(given_value) == codec


_GBK_TEXT = st.text(st.characters(codec="gbk", exclude_categories=["Cs"]), max_size=20)


@given(params=st.dictionaries(st.text("abcdefghij_", min_size=1, max_size=8), _GBK_TEXT,
                              max_size=6),
       charset=st.sampled_from(["utf-8", "gbk"]))
def test_whatever_a_client_urlencodes_once_in_the_charset_decodes_back(params, charset):
    params = {k: v for k, v in params.items() if k != "_input_charset"}
    body = urlencode({**params, "_input_charset": charset}, encoding=charset).encode("ascii")
    decoded = decode_request(b"", body)
    assert decoded.charset == charset
    assert decoded.params == {**params, "_input_charset": charset}
