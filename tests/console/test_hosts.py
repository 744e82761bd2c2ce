"""The Host names and origins the console answers (pure: no server). A console bound to
loopback answers its loopback address and ``localhost`` at its port, plus what
``UNSIGN_CONSOLE_HOSTS`` lists; every other Host (a DNS-rebinding page's) is refused, and a
form's Origin is compared with these names, never with the request's own Host."""

from __future__ import annotations

import pytest

from unsign_worker.console.hosts import (
    HostPolicy,
    Name,
    check_without_credentials,
    loopback_names,
    parse_hosts,
)
from unsign_worker.protocol.exceptions import ConfigError


def hosts(names: tuple[Name, ...]) -> list[str]:
    return [n.host for n in names]


def test_loopback_names_follow_the_bound_address_and_port() -> None:
    assert hosts(loopback_names("127.0.0.1", 5560)) == ["127.0.0.1:5560", "localhost:5560"]
    assert hosts(loopback_names("::1", 5560)) == ["[::1]:5560", "localhost:5560"]
    assert hosts(loopback_names("[::1]", 5560)) == ["[::1]:5560", "localhost:5560"]
    assert hosts(loopback_names("localhost", 5560)) == ["127.0.0.1:5560", "[::1]:5560",
                                                        "localhost:5560"]
    # a container's wildcard address: its health check comes over loopback
    assert hosts(loopback_names("0.0.0.0", 5560)) == ["127.0.0.1:5560", "[::1]:5560",
                                                      "localhost:5560"]
    assert hosts(loopback_names("10.1.2.3", 5560)) == ["10.1.2.3:5560"]
    assert hosts(loopback_names("127.0.0.1", 80)) == ["127.0.0.1:80", "localhost:80",
                                                      "127.0.0.1", "localhost"]


def test_a_policy_answers_nothing_before_it_listens_then_only_its_names() -> None:
    policy = HostPolicy("127.0.0.1")
    assert not policy.allows_host(["127.0.0.1:5560"])
    policy.listening([5560])
    for good in ("127.0.0.1:5560", "localhost:5560", "LOCALHOST:5560"):
        assert policy.allows_host([good]), good
    for bad in ("rebind.attacker.example:5560", "rebind.attacker.example", "127.0.0.1",
                "127.0.0.1:5561", "[::1]:5560", "localhost.:5560", "127.0.0.2:5560",
                "localhost:5560.attacker.example", ""):
        assert not policy.allows_host([bad]), bad
    assert not policy.allows_host([])
    assert not policy.allows_host(["127.0.0.1:5560", "rebind.attacker.example:5560"])
    assert policy.describe() == "127.0.0.1:5560, localhost:5560"


def test_origins_are_the_consoles_own_never_the_requests_host() -> None:
    policy = HostPolicy("127.0.0.1", parse_hosts("https://ops.example.com"))
    policy.listening([5560])
    assert policy.allows_origin(None)  # no Origin sent: the CSRF token decides
    for good in ("http://127.0.0.1:5560", "http://localhost:5560", "https://ops.example.com"):
        assert policy.allows_origin(good), good
    for bad in ("http://rebind.attacker.example:5560", "null", "", "https://127.0.0.1:5560",
                "http://ops.example.com", "https://ops.example.com:8443",
                "https://evil.example"):
        assert not policy.allows_origin(bad), bad


def test_parse_hosts_normalises_entries() -> None:
    names = parse_hosts(" https://Ops.Example.com , localhost:8000,,http://[::1]:8001,"
                        "https://ops.example.com:443, http://10.1.2.3:80, console.internal")
    assert [(n.host, n.origin) for n in names] == [
        ("ops.example.com", "https://ops.example.com"),
        ("localhost:8000", "http://localhost:8000"),
        ("[::1]:8001", "http://[::1]:8001"),
        ("ops.example.com", "https://ops.example.com"),
        ("10.1.2.3", "http://10.1.2.3"),
        ("console.internal", "http://console.internal"),
    ]
    assert parse_hosts("") == () and parse_hosts(" , ") == ()


@pytest.mark.parametrize("entry", [
    "*", "*.example.com", "https://ops.example.com/console", "ftp://ops.example.com",
    "https://user:pw@ops.example.com", "ops.example.com:99999", "ops.example.com:port",
    "ops.example.com.", "ops example.com", "https://", "[::g]:80", "ops.example.com?x=1",
    "-ops.example.com",
])
def test_parse_hosts_refuses_anything_but_a_name_with_a_port(entry: str) -> None:
    with pytest.raises(ConfigError, match="UNSIGN_CONSOLE_HOSTS") as caught:
        parse_hosts(f"localhost:8000,{entry}")
    assert "host[:port] or https://host[:port]" in str(caught.value)


def test_without_credentials_only_loopback_names_may_be_listed() -> None:
    check_without_credentials(parse_hosts("localhost:8000,127.0.0.2:8000,http://[::1]:8000"))
    for entry in ("ops.example.com", "https://ops.example.com", "10.1.2.3:5560",
                  "localhost.attacker.example"):
        with pytest.raises(ConfigError, match="not a loopback name"):
            check_without_credentials(parse_hosts(entry))
