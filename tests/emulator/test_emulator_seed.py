"""``unsign-worker emulator seed``: valid data, the chosen mix, determinism, and the outcomes
the emulator then really gives."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.plugins.emulator_fixtures import EmulatorFactory
from unsign_worker.cli.main import main
from unsign_worker.emulator.agreements import AgreementBook, agreement_from_entry
from unsign_worker.emulator.config import load_agreements_file
from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.seed import (
    ESCALATION_CODES,
    MAX_SEED,
    OUTCOMES,
    PRESETS,
    allocate,
    generate,
    parse_mix,
)
from unsign_worker.protocol.param_rules import validate_partner
from unsign_worker.protocol.params import UnsignRequest
from unsign_worker.protocol.response import parse_response
from unsign_worker.protocol.signing import Md5Signer


def seed(tmp_path: Path, *args: str) -> tuple[dict[str, object], list[dict[str, str]],
                                               dict[str, str]]:
    agreements, campaign, expected = (tmp_path / "a.json", tmp_path / "c.csv",
                                      tmp_path / "e.csv")
    code = main(["emulator", "seed", "--agreements", str(agreements), "--campaign",
                 str(campaign), "--expected", str(expected), *args])
    assert code == 0
    with open(campaign, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(expected, encoding="utf-8", newline="") as f:
        outcomes = {r["reference"]: r["outcome"] for r in csv.DictReader(f)}
    return json.loads(agreements.read_text(encoding="utf-8")), rows, outcomes


def request_of(row: dict[str, str]) -> UnsignRequest:
    return UnsignRequest.from_mapping({k: v for k, v in row.items() if k != "reference" and v})


def test_the_campaign_has_the_documented_header(tmp_path):
    seed(tmp_path, "--count", "5", "--seed", "1")
    header = (tmp_path / "c.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "reference,customer_code,type_code,trans_account_out,biz_type,user_email"


def test_every_row_is_valid_except_the_intended_bad_rows(tmp_path):
    _, rows, outcomes = seed(tmp_path, "--count", "600", "--mix", "mixed", "--seed", "4")
    for row in rows:
        errors = request_of(row).errors(charset="utf-8")
        if outcomes[row["reference"]] == "bad_row":
            assert errors, row
        else:
            assert errors == [], (row, errors)


def test_the_agreements_file_loads(tmp_path):
    seed(tmp_path, "--count", "200", "--mix", "mixed", "--seed", "8")
    loaded = load_agreements_file(tmp_path / "a.json")
    assert len(loaded.agreements) == 200 - Counter(
        generate(200, PRESETS["mixed"], seed=8).outcomes.values())["not_found"]


def test_the_data_follows_the_formats_of_the_interface(tmp_path):
    data, rows, _ = seed(tmp_path, "--count", "300", "--mix", "clean", "--seed", "2")
    assert validate_partner(str(data["partner"])) == []
    for entry in data["agreements"]:  # type: ignore[union-attr]
        assert len(entry["customer_code"]) <= 12
        assert len(entry.get("type_code", "")) <= 30
        assert len(entry["user_id"]) == 16 and entry["user_id"].startswith("2088")
        if "trans_account_out" in entry:
            assert entry["trans_account_out"] == entry["user_id"] + "0156"


def test_rows_use_all_three_ways_of_naming_an_agreement(tmp_path):
    _, rows, _ = seed(tmp_path, "--count", "100", "--mix", "clean", "--seed", "3")
    forms = Counter("customer_code" if r["customer_code"] else
                    "type_code" if r["type_code"] else "biz_type" for r in rows)
    assert set(forms) == {"customer_code", "type_code", "biz_type"}


def test_the_mix_is_followed_exactly(tmp_path):
    _, rows, outcomes = seed(tmp_path, "--count", "1000", "--mix", "demo", "--seed", "5")
    counts = Counter(outcomes.values())
    assert counts["success"] == 800 and counts["transient"] == 80
    assert all(counts[code] == 10 for code in ESCALATION_CODES)
    assert len(rows) == 1000 and len(outcomes) == 1000


def test_the_same_seed_writes_the_same_files(tmp_path):
    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir()
    second.mkdir()
    seed(first, "--count", "50", "--seed", "9")
    seed(second, "--count", "50", "--seed", "9")
    for name in ("a.json", "c.csv", "e.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_another_seed_writes_other_files(tmp_path):
    assert generate(50, PRESETS["demo"], seed=1).rows != generate(50, PRESETS["demo"],
                                                                  seed=2).rows


def test_a_mix_file_gives_weights_by_outcome(tmp_path):
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps({"success": 3, "not_found": 1}))
    _, _, outcomes = seed(tmp_path, "--count", "8", "--mix", str(mix), "--seed", "1")
    assert Counter(outcomes.values()) == {"success": 6, "not_found": 2}


def test_a_bad_mix_names_the_outcome(tmp_path, capsys):
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps({"succes": 1}))
    code = main(["emulator", "seed", "--count", "3", "--mix", str(mix), "--agreements",
                 str(tmp_path / "a.json"), "--campaign", str(tmp_path / "c.csv")])
    assert code == 1 and "succes: unknown outcome" in capsys.readouterr().err


@pytest.mark.parametrize("data", [{}, [], {"success": -1}, {"success": 0}, {"success": True}])
def test_degenerate_mixes_are_refused(data):
    with pytest.raises(EmulatorConfigError):
        parse_mix(data)


def test_a_bad_partner_is_refused(tmp_path, capsys):
    code = main(["emulator", "seed", "--count", "3", "--partner", "123", "--agreements",
                 str(tmp_path / "a.json"), "--campaign", str(tmp_path / "c.csv")])
    assert code == 1 and "--partner" in capsys.readouterr().err


@given(count=st.integers(0, 5000),
       weights=st.dictionaries(st.sampled_from(OUTCOMES), st.floats(0.01, 100), min_size=1))
def test_allocation_adds_up_to_the_count_and_stays_near_the_weights(count, weights):
    counts = allocate(count, weights)
    assert sum(counts.values()) == count
    total = sum(weights.values())
    for name, weight in weights.items():
        assert abs(counts[name] - count * weight / total) < 1


def test_the_seeded_data_set_gives_each_row_its_intended_outcome(tmp_path,
                                                                 emulator_factory: EmulatorFactory):
    # Given a data set with every outcome, served by an emulator
    data, rows, outcomes = seed(tmp_path, "--count", "110", "--mix", "mixed", "--seed", "6")
    emu = emulator_factory(agreements=data["agreements"],  # type: ignore[arg-type]
                           partner=str(data["partner"]))
    signer = Md5Signer(emu.key)
    # When every valid row is sent, again after a retryable answer, as a worker would
    seen: dict[str, str] = {}
    for row in rows:
        outcome = outcomes[row["reference"]]
        if outcome == "bad_row":
            continue
        business = {k: v for k, v in row.items() if k != "reference" and v}
        codes = []
        for _ in range(4):
            parsed = parse_response(emu.send(emu.signed(**business)).content, verifier=signer)
            codes.append("T" if parsed.is_success else parsed.error)
            if codes[-1] not in ("SYSTEM_ERROR", "ILLEGAL_SYSTEM"):
                break
        seen[outcome] = codes[-1]
        # Then each outcome answers as intended
        expected = {"success": "T", "transient": "T", "not_found": "NOT_EXIST_CUST_SIGN",
                    "not_signed": "STATUS_CUSTOMER_SIGN"}.get(outcome, outcome)
        assert codes[-1] == expected, (row, codes)
        assert (len(codes) > 1) == (outcome == "transient")
    assert set(seen) == set(OUTCOMES) - {"bad_row"}



def identities(data) -> set[tuple[str, str]]:
    """Every id and identity a data set uses, in its agreements and its rows."""
    found: set[tuple[str, str]] = set()
    for entry in data.agreements:
        found.update((name, str(value).lower()) for name, value in entry.items()
                     if name in ("id", "customer_code", "user_id", "trans_account_out",
                                 "user_email"))
    for row in data.rows:
        found.update((name, value.lower()) for name, value in row.items()
                     if name != "type_code" and name != "biz_type" and value)
    return found


@given(st.integers(0, MAX_SEED), st.integers(0, MAX_SEED))
def test_two_seeds_give_disjoint_identities_and_one_seed_the_same_set(first, second):
    # Given two data sets of the same size and mix
    one = generate(30, PRESETS["mixed"], seed=first)
    other = generate(30, PRESETS["mixed"], seed=second)
    if first == second:
        # Then the same seed gives the same set
        assert one == other
    else:
        # Then different seeds share no id, code, account, user id or email
        assert identities(one).isdisjoint(identities(other))
        # and one emulator can hold both
        book = AgreementBook.build([agreement_from_entry(e, "a")
                                    for e in one.agreements + other.agreements])
        assert len(book) == len(one.agreements) + len(other.agreements)


def test_without_a_seed_one_is_drawn_and_printed(tmp_path, capsys):
    seed(tmp_path, "--count", "3")
    printed = int(re.search(r"seed (\d+)\)", capsys.readouterr().out).group(1))
    again = tmp_path / "again"
    again.mkdir()
    seed(again, "--count", "3", "--seed", str(printed))
    assert (again / "a.json").read_bytes() == (tmp_path / "a.json").read_bytes()


def test_a_seed_outside_the_five_digits_is_refused(tmp_path, capsys):
    code = main(["emulator", "seed", "--count", "3", "--seed", str(MAX_SEED + 1),
                 "--agreements", str(tmp_path / "a.json"), "--campaign", str(tmp_path / "c.csv")])
    assert code == 1 and "--seed: must be 0 .. 99999" in capsys.readouterr().err


def test_the_old_name_of_not_signed_is_refused_pointing_at_the_new_one() -> None:
    with pytest.raises(EmulatorConfigError, match="already_unsigned: now called 'not_signed'"):
        parse_mix({"success": 1, "already_unsigned": 1})
    assert parse_mix({"not_signed": 1}) == {"not_signed": 1.0}
