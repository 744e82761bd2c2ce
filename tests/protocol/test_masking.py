"""Masking of personal data and removal of secrets from what a human sees."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from unsign_worker.protocol.masking import mask_account, mask_email, mask_params


def test_an_email_keeps_its_first_character_and_its_domain() -> None:
    assert mask_email("maoamo@alipay.com") == "m***@alipay.com"


def test_an_email_with_an_empty_local_part_shows_only_the_domain() -> None:
    assert mask_email("@alipay.com") == "***@alipay.com"


def test_a_phone_login_shows_five_of_its_digits_and_another_login_is_masked_as_an_account(
        ) -> None:
    assert mask_email("13800138000") == "138********00"
    assert mask_email("lw.2024.login") == "lw.2********ogin"


def test_an_account_keeps_four_characters_at_each_end_behind_a_fixed_run_of_stars() -> None:
    assert mask_account("20880020070189160156") == "2088********0156"
    assert mask_account("123456789") == "1234********6789"


def test_short_and_empty_accounts_reveal_nothing() -> None:
    assert mask_account("12345678") == "****"
    assert mask_account("") == ""


def test_mask_params_masks_personal_data_and_drops_secrets() -> None:
    params = {"user_email": "maoamo@alipay.com", "trans_account_out": "20880020070189160156",
              "account_no": "20880020070189160156", "sign": "abc", "key": "k", "biz_type": "10004",
              "private_key": "pem", "password": "pw", "count": 3}
    assert mask_params(params) == {"user_email": "m***@alipay.com",
                                   "trans_account_out": "2088********0156",
                                   "account_no": "2088********0156", "biz_type": "10004",
                                   "count": 3}


@given(st.text(min_size=9, max_size=40))
def test_a_masked_account_has_the_same_length_whatever_the_account(value: str) -> None:
    masked = mask_account(value)
    assert len(masked) == 16
    assert (masked[:4], masked[4:12], masked[12:]) == (value[:4], "*" * 8, value[-4:])


@given(st.from_regex(r"[a-z0-9.]{2,20}@[a-z]{1,10}\.com", fullmatch=True))
def test_a_masked_email_never_shows_the_local_part_beyond_one_character(email: str) -> None:
    local, _, domain = email.partition("@")
    assert mask_email(email) == f"{local[0]}***@{domain}"
