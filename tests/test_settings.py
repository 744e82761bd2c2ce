"""Settings: built once from the environment, secrets never shown, gateway URL rules."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.settings import (
    DEFAULT_GATEWAY_URL,
    DEFAULT_KEY_PREFIX,
    DEFAULT_REDIS_URL,
    Secret,
    Settings,
    check_gateway_url,
    is_loopback_host,
    redact_url,
)

KEY = "0123456789abcdefghijklmnopqrstuv"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIsecretmaterial\n-----END PRIVATE KEY-----"


# --- secrets ---------------------------------------------------------------------------------


def test_repr_and_str_never_show_the_key_the_private_key_or_a_redis_password() -> None:
    settings = Settings(partner="2088101568338364", key=Secret(KEY), private_key_pem=Secret(PEM),
                        redis_url="redis://:hunter2@127.0.0.1:6379/0",
                        broker_url="redis://user:hunter3@127.0.0.1:6379/1")
    for shown in (repr(settings), str(settings)):
        assert KEY not in shown and "secretmaterial" not in shown
        assert "hunter2" not in shown and "hunter3" not in shown
        assert "redis://:********@127.0.0.1:6379/0" in shown
    assert settings.key.reveal() == KEY  # the value is still there for signing


def test_a_secret_hides_its_value_but_compares_by_it() -> None:
    assert repr(Secret(KEY)) == str(Secret(KEY)) == "Secret('********')"
    assert repr(Secret("")) == "Secret('')" and not Secret("") and Secret("x")
    assert Secret(KEY) == Secret(KEY) and Secret(KEY) != Secret("other")
    assert hash(Secret(KEY)) == hash(Secret(KEY))


def test_a_secret_cannot_be_pickled_into_a_task_message() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(KEY))


def test_redact_url_leaves_urls_without_a_password_alone() -> None:
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("redis://u:p@h/0") == "redis://u:********@h/0"
    assert redact_url("redis://[::1") == "<unparsable URL>"


# --- from_env --------------------------------------------------------------------------------


def test_from_env_with_nothing_set_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.gateway_url == DEFAULT_GATEWAY_URL
    assert settings.redis_url == settings.broker_url == DEFAULT_REDIS_URL
    assert settings.key_prefix == DEFAULT_KEY_PREFIX
    assert (settings.sign_type, settings.input_charset, settings.sandbox) == ("MD5", "utf-8", False)
    assert settings.partner == "" and not settings.key and settings.test_partners == ()


def test_from_env_reads_every_alipay_variable(tmp_path: Path) -> None:
    (tmp_path / "private.pem").write_text(PEM + "\n")
    (tmp_path / "public.pem").write_text("PUBLIC\n")
    settings = Settings.from_env({
        "ALIPAY_PARTNER": " 2088101568338364 ",
        "ALIPAY_SIGN_TYPE": "RSA",
        "ALIPAY_PRIVATE_KEY_FILE": str(tmp_path / "private.pem"),
        "ALIPAY_PUBLIC_KEY_FILE": str(tmp_path / "public.pem"),
        "ALIPAY_INPUT_CHARSET": "GBK",
        "ALIPAY_GATEWAY_URL": "http://127.0.0.1:8080/gateway.do",
        "ALIPAY_CA_BUNDLE": "/etc/ca.pem",
        "ALIPAY_TEST_PARTNERS": "2088101568338364, 2088000000000001,",
        "UNSIGN_SANDBOX": "1",
        "UNSIGN_REDIS_URL": "redis://127.0.0.1:6379/5",
        "UNSIGN_KEY_PREFIX": "u2:",
    })
    assert settings.partner == "2088101568338364"
    assert settings.private_key_pem.reveal() == PEM and settings.public_key_pem == "PUBLIC"
    assert settings.input_charset == "gbk" and settings.sign_type == "RSA"
    assert settings.ca_bundle == "/etc/ca.pem" and settings.sandbox
    assert settings.broker_url == "redis://127.0.0.1:6379/5"  # defaults to the Redis URL
    assert settings.test_partners == ("2088101568338364", "2088000000000001")
    assert settings.is_test_partner and settings.key_prefix == "u2:"


def test_the_md5_key_comes_from_alipay_key_or_else_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    from_file = Settings.from_env({"ALIPAY_KEY_FILE": str(tmp_path / "key")})
    assert from_file.key.reveal() == KEY
    direct = Settings.from_env({"ALIPAY_KEY": "x" * 32, "ALIPAY_KEY_FILE": "/nonexistent"})
    assert direct.key.reveal() == "x" * 32


@pytest.mark.parametrize("variable", ["ALIPAY_KEY_FILE", "ALIPAY_PRIVATE_KEY_FILE",
                                      "ALIPAY_PUBLIC_KEY_FILE"])
def test_an_unreadable_file_is_reported_naming_the_variable(variable: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=f"^{variable}: cannot read .*missing.pem"):
        Settings.from_env({variable: missing})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("UNSIGN_CONNECT_TIMEOUT", "fast", "is not a number"),
        ("UNSIGN_READ_TIMEOUT", "-1", "must not be negative"),
        ("UNSIGN_HTTP_POOL_SIZE", "ten", "is not a number"),
        ("UNSIGN_LEASE", "1e9", "UNSIGN_VISIBILITY_TIMEOUT: must exceed"),
        ("UNSIGN_VISIBILITY_TIMEOUT", "100", "UNSIGN_VISIBILITY_TIMEOUT: must exceed"),
    ],
)
def test_a_malformed_number_is_reported_naming_the_variable(variable: str, value: str,
                                                             message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_env({variable: value})
    assert str(caught.value).startswith(("UNSIGN_VISIBILITY_TIMEOUT", variable))


def test_numbers_are_read_in_their_units() -> None:
    settings = Settings.from_env({"UNSIGN_CONNECT_TIMEOUT": "2.5", "UNSIGN_HTTP_POOL_SIZE": "8"})
    assert settings.connect_timeout_seconds == 2.5 and settings.http_pool_size == 8


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_sandbox_accepts_the_usual_true_words(value: str) -> None:
    assert Settings.from_env({"UNSIGN_SANDBOX": value}).sandbox


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_sandbox_is_off_unless_asked(value: str) -> None:
    assert not Settings.from_env({"UNSIGN_SANDBOX": value}).sandbox


def test_from_env_reads_a_dotenv_file_below_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a .env in the working directory and one variable also set in the environment
    (tmp_path / ".env").write_text("ALIPAY_PARTNER=2088000000000001\nUNSIGN_KEY_PREFIX=env:\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNSIGN_KEY_PREFIX", "process:")
    monkeypatch.delenv("ALIPAY_PARTNER", raising=False)
    # Then the file fills in, and the process environment wins
    settings = Settings.from_env()
    assert settings.partner == "2088000000000001" and settings.key_prefix == "process:"
    assert Settings.from_env(load_dotenv=False).partner == ""


# --- the gateway URL -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["https://mapi.alipay.com/gateway.do", "https://localhost:8443/gateway.do"],
)
def test_production_accepts_https_with_a_host_name_it_allows(url: str) -> None:
    check_gateway_url(url, sandbox=False, allowed_hosts=("localhost",))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mapi.alipay.com/gateway.do", "only https:// is allowed outside sandbox"),
        ("http://127.0.0.1:8080/gateway.do", "only https:// is allowed outside sandbox"),
        ("https://110.75.143.17/gateway.do", "not an IP literal"),
        ("https://127.0.0.1:8443/gateway.do", "not an IP literal"),
        ("https://[::1]:8443/gateway.do", "not an IP literal"),
        ("https://2130706433/gateway.do", "not an IP literal"),
        ("https://0x7f000001/gateway.do", "not an IP literal"),
        ("https://127.1/gateway.do", "not an IP literal"),
        ("https://110.75.143.17./gateway.do", "not an IP literal"),
        ("ftp://mapi.alipay.com/gateway.do", "is not an http"),
        ("mapi.alipay.com/gateway.do", "is not an http"),
        ("https://mapi.alipay.com:99999/gateway.do", "is not a well-formed URL"),
    ],
)
def test_production_refuses_plain_http_ip_literals_and_non_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^ALIPAY_GATEWAY_URL: .*{message}"):
        check_gateway_url(url, sandbox=False)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/gateway.do", "http://localhost:8080/gateway.do",
     "http://[::1]:8080/gateway.do", "https://127.0.0.1:8443/gateway.do"],
)
def test_sandbox_accepts_http_and_https_on_loopback(url: str) -> None:
    check_gateway_url(url, sandbox=True)


@pytest.mark.parametrize(
    "url",
    ["http://mapi.alipay.com/gateway.do", "https://mapi.alipay.com/gateway.do",
     "http://10.0.0.5:8080/gateway.do", "http://192.168.1.1/gateway.do"],
)
def test_sandbox_refuses_any_non_loopback_gateway(url: str) -> None:
    with pytest.raises(ConfigError, match="sandbox mode only talks to a loopback gateway"):
        check_gateway_url(url, sandbox=True)


def test_loopback_hosts_are_localhost_and_loopback_literals_only() -> None:
    assert is_loopback_host("localhost") and is_loopback_host("LOCALHOST")
    assert is_loopback_host("127.0.0.1") and is_loopback_host("127.1.2.3")
    assert is_loopback_host("[::1]") and is_loopback_host("::1")
    assert not is_loopback_host("10.0.0.1") and not is_loopback_host("localhost.example.com")


# --- the documentation stays true ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def variables_read_by_from_env() -> set[str]:
    source = (ROOT / "unsign_worker" / "settings.py").read_text(encoding="utf-8")
    return set(re.findall(r"\b(?:get|num)\(\s*\"([A-Z][A-Z0-9_]+)\"", source))


def test_docs_configuration_lists_exactly_the_variables_settings_read() -> None:
    read = variables_read_by_from_env()
    assert {"ALIPAY_PARTNER", "UNSIGN_REDIS_URL", "UNSIGN_LEASE"} <= read  # the parser works
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `((?:ALIPAY|UNSIGN)_[A-Z0-9_]+)` \|", doc, re.MULTILINE))
    assert sorted(read - documented) == [], "variables missing from docs/configuration.md"
    assert sorted(documented - read) == [], "docs/configuration.md lists unknown variables"
