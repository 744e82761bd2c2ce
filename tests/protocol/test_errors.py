"""The error catalogue against sections 8.1 and 8.2 of the technical document, and its routes."""

from __future__ import annotations

import re

import pytest

from tests import paths
from unsign_worker.protocol.catalogue import CATALOGUE, Category, codes_in, lookup

DOC = paths.DATA / "customer_unsign-technical-doc.txt"

# An error-code row: an all-caps code with underscores, a run of spaces, the Chinese meaning.
_ROW = re.compile(r"^\s*([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\s{2,}(\S.*?)\s*$", re.MULTILINE)


def _normalise(text: str) -> str:
    return " ".join(text.split())


def doc_codes(section: str) -> dict[str, str]:
    """``{code: Chinese meaning}`` of one section of the appendix, parsed from the document."""
    text = DOC.read_text(encoding="utf-8")
    # the headings, not the table of contents (whose lines end in dots and page numbers)
    start = re.search(rf"^{re.escape(section)} \S+错误码\s*$", text, re.MULTILINE)
    assert start is not None, f"section {section} not found in {DOC.name}"
    following = re.search(r"^8\.\d \S+错误码\s*$", text[start.end():], re.MULTILINE)
    end = start.end() + following.start() if following else len(text)
    return {code: _normalise(meaning) for code, meaning in _ROW.findall(text[start.end():end])}


SECTION_8_1 = doc_codes("8.1")
SECTION_8_2 = doc_codes("8.2")


def test_the_document_parser_finds_both_tables_in_full() -> None:
    # guards the parser: both tables span a page break, and their first and last rows are found
    assert len(SECTION_8_1) == 32 and len(SECTION_8_2) == 6
    assert {"FAIL_UNSIGN_BATCH_PAY_PRIVILEGE", "HAS_NO_PRIVILEGE"} <= set(SECTION_8_1)
    assert {"SYSTEM_ERROR", "EXTERFACE_IS_CLOSED"} <= set(SECTION_8_2)
    assert not set(SECTION_8_1) & set(SECTION_8_2)


@pytest.mark.parametrize(("section", "codes"), [("8.1", SECTION_8_1), ("8.2", SECTION_8_2)])
def test_every_code_of_the_document_is_catalogued_with_its_chinese_meaning(
    section: str, codes: dict[str, str]
) -> None:
    missing = sorted(set(codes) - set(CATALOGUE))
    assert missing == []
    for code, meaning in codes.items():
        entry = CATALOGUE[code]
        assert _normalise(entry.zh) == meaning, code
        assert entry.section == section, code


def test_the_catalogue_holds_nothing_but_the_document_and_status_type_code() -> None:
    assert set(CATALOGUE) == set(SECTION_8_1) | set(SECTION_8_2) | {"STATUS_TYPE_CODE"}
    assert CATALOGUE["STATUS_TYPE_CODE"].category is Category.ESCALATE
    assert CATALOGUE["STATUS_TYPE_CODE"].zh


def test_every_entry_explains_itself_in_english_and_gives_advice() -> None:
    for code, entry in CATALOGUE.items():
        assert entry.code == code
        assert entry.en and entry.advice and entry.zh, code
        assert entry.as_dict()["category"] == str(entry.category)


# The routes the README digest gives, from the usage rules' error-handling table.
DIGEST = {
    Category.RETRY: {"SYSTEM_ERROR", "ILLEGAL_SYSTEM"},
    Category.ESCALATE: {"STATUS_TYPE_CODE", "ILLEGAL_SERVICE_TIME_OUT",
                        "NOT_EXIST_PARTNER_TYPE_CODE", "TOO_MUCH_TYPE_CODE",
                        "FAIL_UNFREEZE_STANDARD_BAIL", "FAIL_UNSIGN_BATCH_PAY_PRIVILEGE"},
    Category.REJECT: {"ILLEGAL_ARGUMENT", "NOT_EXIST_CUST_SIGN", "STATUS_CUSTOMER_SIGN",
                      "NOT_EXIST_CUSTOMER"},
    Category.HALT: {"ILLEGAL_SIGN", "ILLEGAL_PARTNER", "ILLEGAL_SECURITY_PROFILE",
                    "ILLEGAL_SIGN_TYPE", "ILLEGAL_CHARSET", "ILLEGAL_CLIENT_IP", "HAS_NO_PRIVILEGE",
                    "EXTERFACE_IS_CLOSED"},
}


@pytest.mark.parametrize(
    ("code", "category"),
    [pytest.param(code, cat, id=f"{code} is {cat}") for cat, codes in DIGEST.items()
     for code in sorted(codes)],
)
def test_codes_take_the_route_the_usage_rules_give(code: str, category: Category) -> None:
    assert lookup(code).category is category


def test_retry_codes_tell_to_resend_the_original_parameters() -> None:
    for code in ("SYSTEM_ERROR", "ILLEGAL_SYSTEM"):
        assert "ORIGINAL" in CATALOGUE[code].advice


def test_escalated_codes_send_the_operator_to_alipay_support() -> None:
    for code in codes_in(Category.ESCALATE):
        assert "support" in CATALOGUE[code].advice, code


def test_system_codes_of_section_8_2_are_never_rejected_silently() -> None:
    # section 8.2: "contact Alipay technical support"; only SESSION_TIMEOUT is plausibly transient
    assert lookup("SESSION_TIMEOUT").category is Category.RETRY
    for code in set(SECTION_8_2) - {"SYSTEM_ERROR", "SESSION_TIMEOUT"}:
        assert lookup(code).category is Category.HALT, code
        assert "support" in lookup(code).advice.lower(), code


def test_anti_phishing_and_interface_codes_halt_the_line() -> None:
    for code in ("ILLEGAL_EXTER_INVOKE_IP", "ANTI_PHISHING_KEY_TIMEOUT", "ILLEGAL_EXTERFACE",
                 "ILLEGAL_DYN_MD5_KEY", "ILLEGAL_ENCODING"):
        assert lookup(code).category is Category.HALT


@pytest.mark.parametrize("code", ["NEW_CODE_FROM_2030", "", "system_error"])
def test_an_unknown_code_is_escalated_never_retried(code: str) -> None:
    entry = lookup(code)
    assert entry.category is Category.ESCALATE
    assert entry.code == code and entry.section == "unknown"
    assert code not in CATALOGUE


def test_categories_partition_the_catalogue_and_list_sorted_codes() -> None:
    listed = [codes_in(category) for category in Category]
    assert all(codes == sorted(codes) for codes in listed)
    assert sorted(code for codes in listed for code in codes) == sorted(CATALOGUE)
