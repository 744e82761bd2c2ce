"""Every input the fuzzer (benchmarks/fuzz_response.py) ever caught breaking the parser's
contract is replayed here: it must now be refused with a ResponseError or parsed, never raise
anything else, and never come back as an unverified success when a verifier is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import paths
from unsign_worker.protocol.exceptions import ResponseError
from unsign_worker.protocol.response import GatewayResponse, parse_response
from unsign_worker.protocol.signing import Md5Signer

CORPUS = paths.DATA / "fuzz_corpus"
KEY = "0123456789abcdefghijklmnopqrstuv"


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.bin"))


def test_the_regression_corpus_is_present() -> None:
    assert corpus_files(), f"no regression inputs in {CORPUS}"


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_a_corpus_input_is_parsed_or_refused_never_crashes(path: Path, charset: str) -> None:
    body = path.read_bytes()
    for verifier in (None, Md5Signer(KEY)):
        try:
            result = parse_response(body, verifier=verifier, charset=charset)
        except ResponseError:
            continue
        assert isinstance(result, GatewayResponse)
        if verifier is not None:
            assert result.verified or not result.is_success
