"""The shortcuts of the hot paths say what the rules and the JSON module say."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from unsign_worker.protocol.param_rules import (
    _PLAIN,
    BUSINESS_FIELDS,
    CHARSETS,
    MAX_LENGTHS,
    _format_errors,
    check_value,
)
from unsign_worker.protocol.params import UnsignRequest
from unsign_worker.store.job import params_json


@given(st.sampled_from(BUSINESS_FIELDS).flatmap(
    lambda name: st.tuples(st.just(name), st.from_regex(_PLAIN[name], fullmatch=True))))
def test_a_plain_value_breaks_no_rule_of_its_field(case: tuple[str, str]) -> None:
    name, value = case
    assert len(value) <= MAX_LENGTHS[name]
    assert _format_errors(name, value) == []
    for charset in CHARSETS:
        assert check_value(name, value, charset=charset) == []


@given(st.dictionaries(st.sampled_from(BUSINESS_FIELDS), st.text(max_size=120)),
       st.sampled_from([*CHARSETS, "UTF-8", "latin-1", "no-such-charset"]))
def test_every_rule_is_still_checked_whatever_the_values(params: dict[str, str],
                                                         charset: str) -> None:
    request = UnsignRequest(**params)
    found = {(e.field, e.rule) for e in request.errors(charset=charset)}
    for name, value in params.items():
        if not value:
            continue
        if len(value) > MAX_LENGTHS[name]:
            assert (name, "max_length") in found
        for error in [*check_value(name, value, charset=charset), *_format_errors(name, value)]:
            assert (error.field, error.rule) in found


@given(st.dictionaries(st.text(), st.text() | st.integers() | st.none()))
def test_params_json_is_what_json_dumps_gives(params: dict[str, object]) -> None:
    assert params_json(params) == json.dumps(params, sort_keys=True, ensure_ascii=False)
