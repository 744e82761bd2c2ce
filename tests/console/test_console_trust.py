"""The console's own trust boundary, against a real ``unsign-worker console`` process.

A web page using DNS rebinding reaches a loopback console under its own name
(``Host: rebind.attacker.example:PORT``): it must get no page, no CSRF token, no cookie, and
change nothing. Names the operator lists in ``UNSIGN_CONSOLE_HOSTS`` work (a TLS proxy, an SSH
tunnel); without credentials only loopback names may be listed. Wrong passwords hammered at the
console end in 429 for that user and address, while the real user signs in from elsewhere. The
console runs with no Alipay key at all: it never needs one.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.plugins.console_fixtures import CREDS, PASSWORD, USER, ConsoleProcess, Reply, send
from tests.plugins.worker_fixtures import BIN, wait_for
from unsign_worker.ops.actions import ActionLog
from unsign_worker.store.breaker import Breaker
from unsign_worker.store.keys import Keys

pytestmark = pytest.mark.slow

REBIND = "rebind.attacker.example"
NOTE = {"note": "fixed the key", "confirm": "yes"}


@pytest.fixture
def keyless_env(redis_url: str, key_prefix: str) -> dict[str, str]:
    """The console's environment with no Alipay setting at all (no key, no key file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "UNSIGN_"))}
    env.update(UNSIGN_REDIS_URL=redis_url, UNSIGN_KEY_PREFIX=key_prefix, PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., ConsoleProcess]]:
    started: list[ConsoleProcess] = []

    def run(env: dict[str, str], *args: str) -> ConsoleProcess:
        # in an empty folder: no .env of the developer's can hand it a key
        proc = ConsoleProcess(env, tmp_path / f"console{len(started)}.log", *args,
                              cwd=tmp_path)
        started.append(proc)
        return proc

    yield run
    for proc in started:
        proc.stop()


def port_of(console: ConsoleProcess) -> int:
    return int(console.base.rpartition(":")[2])


def cookie_and_token(reply: Reply) -> tuple[str, str]:
    cookie = next((v for k, v in reply.headers.items() if k.lower() == "set-cookie"), "")
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', reply.body)
    assert cookie and token, reply
    return cookie.split(";")[0], token.group(1)


def assert_refused_with_nothing(reply: Reply) -> None:
    assert reply.status == 421, reply
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert not any(k.lower() == "set-cookie" for k in reply.headers), reply.headers
    assert "csrf_token" not in reply.body and "<" not in reply.body and len(reply.body) < 100


def test_a_dns_rebinding_page_gets_nothing_from_a_console_without_credentials(
        keyless_env: dict[str, str], start: Callable[..., ConsoleProcess],
        redis_client: redis.Redis, key_prefix: str) -> None:
    # Given an open breaker and a console without credentials (loopback only), with no key
    keys = Keys(key_prefix)
    breaker = Breaker(redis_client, keys, threshold=1, window_seconds=60)
    assert breaker.record_halt("ILLEGAL_PARTNER", "partner not recognised") == "opened"
    journal = ActionLog(redis_client, keys)
    console = start(keyless_env)
    assert "NO credentials" in console.log.read_text()
    port = port_of(console)
    base = console.base
    # and the operator's own session, whose cookie and token the attacker is handed below
    cookie, token = cookie_and_token(send(base, "GET", "/health"))

    # When a rebinding page asks for any page under its own name
    for path in ("/", "/health", "/escalations", "/campaigns", "/lookup?q=x",
                 "/escalations.csv", "/static/console.css", "/healthz"):
        # Then it gets 421 and a line of text: no page, no token, no cookie
        assert_refused_with_nothing(send(base, "GET", path, host=f"{REBIND}:{port}"))
    for host in (REBIND, f"{REBIND}:{port}".upper(), f"127.0.0.1:{port + 1}",
                 f"[::1]:{port}", f"localhost.:{port}", f"127.0.0.1:{port}.{REBIND}"):
        assert_refused_with_nothing(send(base, "GET", "/health", host=host))
    # And its POST that would reset the breaker does nothing, even with a valid token and cookie
    for headers in ({}, {"Cookie": cookie}):
        reply = send(base, "POST", "/health/breaker/reset", host=f"{REBIND}:{port}",
                     headers={"Origin": f"http://{REBIND}:{port}", **headers},
                     form={**NOTE, "csrf_token": token})
        assert_refused_with_nothing(reply)
    # nor from a rebinding page's Origin under the console's own name (Origin is compared with
    # the console's own origins, not with the Host the requester chose)
    reply = send(base, "POST", "/health/breaker/reset", headers={
        "Origin": f"http://{REBIND}:{port}", "Cookie": cookie},
        form={**NOTE, "csrf_token": token})
    assert reply.status == 403 and "cross-origin" in reply.body
    assert breaker.state().state == "open"
    assert journal.recent() == [] and journal.for_target("breaker") == []

    # While the loopback names still work: page, token, cookie, and the reset itself
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        assert send(base, "GET", "/health", host=host).status == 200
    cookie, token = cookie_and_token(send(base, "GET", "/health", host=f"localhost:{port}"))
    done = send(base, "POST", "/health/breaker/reset", host=f"localhost:{port}",
                headers={"Origin": f"http://localhost:{port}", "Cookie": cookie},
                form={**NOTE, "csrf_token": token})
    assert done.status == 303, done
    assert breaker.state().state == "closed"
    [action] = journal.recent()
    assert (action.by, action.action) == ("local (console)", "breaker_reset")
    assert f"answering the Host names 127.0.0.1:{port}, localhost:{port}" in \
        console.log.read_text()


def test_listed_names_work_with_credentials_and_only_loopback_ones_without(
        keyless_env: dict[str, str], start: Callable[..., ConsoleProcess],
        redis_client: redis.Redis, key_prefix: str) -> None:
    # Given a console behind a TLS proxy that forwards the browser's Host
    env = {**keyless_env, "UNSIGN_CONSOLE_AUTH": CREDS,
           "UNSIGN_CONSOLE_HOSTS": "https://console.example.test, localhost:8000"}
    console = start(env)
    base, port = console.base, port_of(console)
    # Then the listed names and the loopback ones are answered, any other is not
    for host in ("console.example.test", "localhost:8000", f"127.0.0.1:{port}"):
        assert send(base, "GET", "/health", host=host, auth=CREDS).status == 200, host
    assert send(base, "GET", "/health", host="console.example.test").status == 401
    assert_refused_with_nothing(send(base, "GET", "/health", host=f"{REBIND}:{port}",
                                     auth=CREDS))
    assert_refused_with_nothing(send(base, "GET", "/health", host="console.example.test:8443",
                                     auth=CREDS))
    # And a form is accepted from the listed origin only
    cookie, token = cookie_and_token(send(base, "GET", "/health", host="console.example.test",
                                          auth=CREDS))
    form = {**NOTE, "csrf_token": token}
    for origin in ("http://console.example.test", f"http://{REBIND}:{port}", "null"):
        reply = send(base, "POST", "/health/breaker/reset", host="console.example.test",
                     auth=CREDS, headers={"Origin": origin, "Cookie": cookie}, form=form)
        assert reply.status == 403, origin
    assert ActionLog(redis_client, Keys(key_prefix)).recent() == []
    reply = send(base, "POST", "/health/breaker/reset", host="console.example.test", auth=CREDS,
                 headers={"Origin": "https://console.example.test", "Cookie": cookie}, form=form)
    assert reply.status == 303
    [action] = ActionLog(redis_client, Keys(key_prefix)).recent()
    assert action.by == f"{USER} (console)"

    # Without credentials a listed name must be a loopback one (an SSH tunnel's)
    tunnel = start({**keyless_env, "UNSIGN_CONSOLE_HOSTS": "localhost:8000"})
    assert send(tunnel.base, "GET", "/health", host="localhost:8000").status == 200
    assert_refused_with_nothing(send(tunnel.base, "GET", "/health",
                                     host="console.example.test"))
    for spec, message in (("console.example.test", "not a loopback name"),
                          ("localhost:8000,*.example.test", "host[:port] or https://")):
        run = subprocess.run([str(BIN / "unsign-worker"), "console", "--port", "0"],
                             env={**keyless_env, "UNSIGN_CONSOLE_HOSTS": spec},
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 1 and "UNSIGN_CONSOLE_HOSTS" in run.stderr, run.stderr
        assert message in run.stderr


def test_hammered_wrong_passwords_get_429_for_that_pair_only(
        keyless_env: dict[str, str], start: Callable[..., ConsoleProcess]) -> None:
    console = start({**keyless_env, "UNSIGN_CONSOLE_AUTH": CREDS})
    base = console.base
    wrong = f"{USER}:not-the-password"
    # When someone hammers wrong passwords from one address
    replies = [send(base, "GET", "/health", auth=wrong) for _ in range(200)]
    # Then five are checked, every further one is answered 429 with when to come back
    assert [r.status for r in replies[:5]] == [401] * 5
    assert {r.status for r in replies[5:]} == {429}
    for reply in replies[5:]:
        assert 1 <= int(reply.headers["Retry-After"]) <= 60
        assert "too many failed sign-ins" in reply.body
        assert "WWW-Authenticate" not in reply.headers
    # even the right password, from that address, while the penalty lasts
    assert send(base, "GET", "/health", auth=CREDS).status == 429
    # while the real user signs in from another address, where a wrong password is a plain 401
    assert send(base, "GET", "/health", auth=CREDS, source="127.0.0.2").status == 200
    assert send(base, "GET", "/health", auth=wrong, source="127.0.0.3").status == 401
    # A user that does not exist is answered exactly alike: 401s, then the same 429
    nobody = [send(base, "GET", "/health", auth=f"nobody:{PASSWORD}") for _ in range(6)]
    assert [r.status for r in nobody] == [401] * 5 + [429]
    assert nobody[5].body == replies[-1].body.replace(
        replies[-1].headers["Retry-After"], nobody[5].headers["Retry-After"])
    assert [r.body for r in nobody[:5]] == [replies[0].body] * 5
    # And the log says so, at warning, without the password
    log = wait_for(lambda: (lambda t: t if "'nobody'" in t else None)(console.log.read_text()),
                   timeout=60, what="the lock-out warnings")
    assert "WARNING" in log
    assert "sign-in locked out for 60 s: user 'ops' from 127.0.0.1" in log
    assert "sign-in locked out for 60 s: user 'nobody' from 127.0.0.1" in log
    assert "not-the-password" not in log and PASSWORD not in log
