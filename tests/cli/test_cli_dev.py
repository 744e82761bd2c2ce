"""``unsign-worker dev``: its Redis, its env file, a child that dies, Ctrl-C.

The walkthrough of README.md through it, in a network namespace where no Redis runs, is
``tests/system/test_readme_walkthrough.py``.
"""

from __future__ import annotations

import re
import shlex
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from tests.plugins.command_run import READY_SECONDS, STOP_SECONDS, CommandRun, clean_env
from tests.plugins.ports import free_port
from tests.plugins.worker_fixtures import BIN
from unsign_worker.cli.main import cli
from unsign_worker.demo.env_file import export_lines, write_private
from unsign_worker.demo.local_redis import LocalAddress, local_address, server_argv
from unsign_worker.demo.processes import DemoError

#: What a test needs besides its waits (starting, cleaning up).
MARGIN_SECONDS = 60
ANY_PORTS = ("--gateway-port", "0", "--flower-port", "0", "--console-port", "0")


@pytest.fixture
def signals_kept() -> Iterator[None]:
    """The command handles SIGTERM and ignores SIGINT while it stops; the test process gets its
    own handlers back (an ignored SIGINT would be inherited by every process it starts)."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def test_without_redis_server_it_says_how_to_install_it_and_exits_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signals_kept: None) -> None:
    # Given no Redis on the URL's port and a PATH without redis-server
    monkeypatch.setenv("UNSIGN_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    # When the sandbox starts
    result = CliRunner().invoke(cli, ["dev", "--dir", str(tmp_path / "dev")])
    # Then it says how to install redis-server, without a traceback, and exits 1
    assert result.exit_code == 1, result.output
    assert "no Redis answers and redis-server is not installed" in result.output
    assert "sudo apt-get install redis-server" in result.output
    assert "brew install redis" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not (tmp_path / "dev" / "env").exists()


def test_a_bad_partner_is_named_before_anything_starts(
        tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch,
        signals_kept: None) -> None:
    monkeypatch.setenv("UNSIGN_REDIS_URL", redis_url)
    result = CliRunner().invoke(cli, ["dev", "--dir", str(tmp_path / "dev"), "--partner", "123"])
    assert result.exit_code == 1, result.output
    assert "dev: --partner: " in result.output and "Traceback" not in result.output
    assert not (tmp_path / "dev" / "logs" / "emulator.log").exists()


@pytest.mark.parametrize("url", ["redis://10.1.2.3:6379/0", "rediss://127.0.0.1:6379/0",
                                 "redis://:secret@127.0.0.1:6379/0"])
def test_a_redis_it_may_not_start_is_refused_with_the_url_redacted(url: str) -> None:
    with pytest.raises(DemoError, match="only a redis:// URL of this machine's loopback") as err:
        local_address(url)
    assert "secret" not in str(err.value)


def test_a_loopback_url_is_served_on_its_own_address_with_its_data_in_the_folder(
        tmp_path: Path) -> None:
    assert local_address("redis://localhost/3") == LocalAddress("127.0.0.1", 6379)
    address = local_address("redis://127.0.0.1:6390")
    argv = server_argv("/usr/bin/redis-server", address, tmp_path)
    assert argv[:5] == ["/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", "6390"]
    assert argv[argv.index("--dir") + 1] == str(tmp_path)


def test_the_env_file_is_private_and_sources_back_to_the_same_values(tmp_path: Path) -> None:
    # Given values a shell would misread unquoted
    values = {"ALIPAY_KEY": "a b'c$d", "ALIPAY_GATEWAY_URL": "https://localhost:1/gateway.do"}
    path = tmp_path / "env"
    path.write_text("old")
    path.chmod(0o644)
    # When the file is written over an older one
    write_private(path, export_lines(values, path_dir=tmp_path / "my bin",
                                     unset=["ALIPAY_KEY_FILE"], comment="the sandbox"))
    # Then it is 0600, and a shell that sources it gets the values back
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = subprocess.run(
        ["bash", "-c", f"ALIPAY_KEY_FILE=x; . {shlex.quote(str(path))}; "
         'printf "%s\\n" "$ALIPAY_KEY" "$ALIPAY_GATEWAY_URL" "${ALIPAY_KEY_FILE-unset}" '
         '"${PATH%%:*}"'], capture_output=True, text=True, check=True).stdout
    assert shown.splitlines() == [*values.values(), "unset", str(tmp_path / "my bin")]


def _dev(tmp_path: Path, redis_url: str, *args: str, prefix: str = "") -> CommandRun:
    env = clean_env(UNSIGN_REDIS_URL=redis_url, **({"UNSIGN_KEY_PREFIX": prefix} if prefix
                                                    else {}))
    return CommandRun([str(BIN / "unsign-worker"), "dev", "--dir", "dev", *ANY_PORTS, *args],
                  cwd=tmp_path, env=env, out=tmp_path / "dev.out")


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(READY_SECONDS + STOP_SECONDS + MARGIN_SECONDS)
def test_ctrl_c_stops_everything_it_started_and_its_redis_last_and_keeps_the_logs(
        tmp_path: Path) -> None:
    # Given the sandbox running with a Redis of its own (none answers on the URL's port)
    url = f"redis://127.0.0.1:{free_port()}/0"
    dev = _dev(tmp_path, url)
    try:
        dev.wait_ready()
        out = dev.text()
        assert f"redis      {url} (started here" in out, out
        assert _answers(url)
        env_file = tmp_path / "dev" / "env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        key = re.search(r"^export ALIPAY_KEY=(\S+)$", env_file.read_text(), re.MULTILINE)
        assert key and key.group(1) not in out, "the key is in the env file, never printed"
        for name in ("ALIPAY_PARTNER", "ALIPAY_CA_BUNDLE", "ALIPAY_GATEWAY_URL",
                     "ALIPAY_GATEWAY_ALLOWED_HOSTS", "UNSIGN_REDIS_URL"):
            assert f"export {name}=" in env_file.read_text()
        assert len(dev.seen) >= 5, "Redis, the emulator, a worker, Flower and the console"
        # When Ctrl-C reaches it, as a terminal sends it
        dev.interrupt()
        code = dev.wait_end()
    finally:
        dev.kill_all()
    # Then it stopped them all, the Redis last, exits 0 and keeps the logs
    out = dev.text()
    assert code == 0, out
    assert "stopped: console, flower, worker 1, emulator, redis; logs stay in dev/logs/" in out
    assert dev.survivors() == [], out
    assert not _answers(url)
    logs = tmp_path / "dev" / "logs"
    assert {"redis.log", "emulator.log", "worker-1.log", "flower.log", "console.log"} <= {
        p.name for p in logs.iterdir()}


@pytest.mark.slow
@pytest.mark.timeout(READY_SECONDS + STOP_SECONDS + MARGIN_SECONDS)
def test_a_child_that_dies_is_named_with_its_log_and_the_rest_are_stopped(
        tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    # Given the sandbox running on a Redis that answers (used as it is)
    dev = _dev(tmp_path, redis_url, prefix=key_prefix)
    try:
        dev.wait_ready()
        assert "(answers PING: used as it is)" in dev.text()
        # When its emulator dies
        dev.started("emulator").kill()
        code = dev.wait_end()
    finally:
        dev.kill_all()
    # Then it names the emulator with the end of its log, stops the rest and exits 1
    out = dev.text()
    assert code == 1, out
    assert re.search(r"^dev: emulator stopped unexpectedly \(exit -9\); see \S+emulator\.log, "
                     r"which ends:\nemulator: serving https://localhost:\d+/gateway\.do", out,
                     re.MULTILINE), out
    assert "stopped: console, flower, worker 1\n" in out or "stopped: console, flower, worker 1;" \
        in out, out
    assert dev.survivors() == [], out
    assert _answers(redis_url), "a Redis it did not start is left alone"


def test_the_dev_command_is_listed() -> None:
    shown = subprocess.run([sys.executable, "-m", "unsign_worker", "--help"],
                           capture_output=True, text=True, check=True).stdout
    assert re.search(r"^\s+dev\s+Run the service on this machine", shown, re.MULTILINE), shown
