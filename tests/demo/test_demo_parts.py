"""The demo's parts that need no process of the project: its supervisor's ready lines, and how
it links its processes to the emulator (TLS by default, sandbox mode for plain HTTP)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.plugins.emulator import KEY, PARTNER
from unsign_worker.demo.data import describe_mix
from unsign_worker.demo.gateway import GatewayLink, emulator_args, prepare_tls
from unsign_worker.demo.hints import keys_hint
from unsign_worker.demo.processes import DemoError, Supervisor, wait_for_line
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.runner import EmulatorThread
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.emulator.tls import server_ssl_context
from unsign_worker.ops.config_checks import CheckStatus, check_settings
from unsign_worker.settings import Settings


def _start_printing(sup: Supervisor, log: Path, text: str):
    code = f"import sys, time; print({text!r}); sys.stdout.flush(); time.sleep(30)"
    return sup.start("printer", [sys.executable, "-c", code], {}, log=log)


def test_a_ready_line_is_looked_for_only_in_what_this_run_wrote(tmp_path: Path) -> None:
    # Given a log an earlier run left with its own ready line (logs are appended to)
    log = tmp_path / "emulator.log"
    log.write_text("emulator: serving http://127.0.0.1:1111/gateway.do\n", encoding="utf-8")
    sup = Supervisor(tmp_path / "pids.json")
    try:
        # When a new child writes its ready line after it
        child = _start_printing(sup, log, "emulator: serving https://localhost:2222/gateway.do")
        found = wait_for_line(child, r"serving (\S+)", timeout=120)
    finally:
        sup.stop(grace=5)
    # Then the new child's line is the one found, not the earlier run's
    assert found.group(1) == "https://localhost:2222/gateway.do"
    assert log.read_text(encoding="utf-8").startswith("emulator: serving http://127.0.0.1:1111")


def test_a_child_that_exits_before_its_ready_line_shows_only_its_own_output(
        tmp_path: Path) -> None:
    # Given a log with an earlier run's output, and a child that fails at once
    log = tmp_path / "flower.log"
    log.write_text("flower: http://127.0.0.1:1111/ (earlier run)\n", encoding="utf-8")
    sup = Supervisor(tmp_path / "pids.json")
    try:
        child = sup.start("flower", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
                          {}, log=log)
        # When the demo waits for its ready line, then it fails, showing this run's output
        with pytest.raises(DemoError, match="exited \\(code 3\\) before it was ready") as info:
            wait_for_line(child, r"flower: (http://\S+/) \(", timeout=120)
    finally:
        sup.stop(grace=5)
    assert "boom" in str(info.value) and "earlier run" not in str(info.value)


# --- how the demo's processes reach its emulator ----------------------------------------------

def _env(link: GatewayLink) -> dict[str, str]:
    return {"ALIPAY_PARTNER": PARTNER, "ALIPAY_KEY": KEY, **link.env()}


def _settings(link: GatewayLink) -> Settings:
    return Settings.from_env(_env(link), load_dotenv=False)


def test_over_tls_the_demo_gives_its_processes_productions_settings_not_sandbox_mode(
        tmp_path: Path) -> None:
    # Given the demo's PKI and the URL its emulator printed
    trust = prepare_tls(tmp_path)
    link = GatewayLink("https://localhost:8443/gateway.do", PARTNER, trust)
    # Then its processes get an https URL, that host allowed, the private root, no sandbox mode
    assert link.env() == {"ALIPAY_GATEWAY_URL": "https://localhost:8443/gateway.do",
                          "ALIPAY_GATEWAY_ALLOWED_HOSTS": "localhost",
                          "ALIPAY_CA_BUNDLE": str(tmp_path / "tls" / "ca.pem"),
                          "UNSIGN_SANDBOX": ""}
    settings = _settings(link)
    assert not settings.sandbox
    assert not Settings.from_env({"UNSIGN_SANDBOX": "1", **_env(link)}, load_dotenv=False).sandbox
    # And check-config finds nothing wrong with them (the emulator's host is a warning: not
    # Alipay's gateway)
    checks = check_settings(settings)
    assert [c for c in checks if c.status == CheckStatus.ERROR] == []
    assert any(c.name == "ALIPAY_CA_BUNDLE" and c.status == CheckStatus.OK for c in checks)
    # And the demo says how to trust it, with the absolute path
    assert link.describe().startswith("https://localhost:8443/gateway.do, certificate from a "
                                      "private CA (made now): export ALIPAY_CA_BUNDLE=/")
    assert link.describe().endswith(str(tmp_path / "tls" / "ca.pem"))
    assert emulator_args(trust) == ["--tls-cert", str(trust.cert_file),
                                    "--tls-key", str(trust.key_file)]


def test_the_demos_pki_is_kept_across_runs(tmp_path: Path) -> None:
    first = prepare_tls(tmp_path)
    root = first.ca_file.read_bytes()
    again = prepare_tls(tmp_path)
    assert first.made and not again.made
    assert again.ca_file.read_bytes() == root
    assert "(kept from an earlier run)" in GatewayLink("https://localhost:1/gateway.do", PARTNER,
                                                       again).describe()


def test_a_pki_that_cannot_be_written_stops_the_demo_naming_the_folder(tmp_path: Path) -> None:
    (tmp_path / "tls").write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(DemoError, match="TLS: cannot write the sandbox PKI in .*tls"):
        prepare_tls(tmp_path)


def test_plain_http_is_sandbox_mode(tmp_path: Path) -> None:
    link = GatewayLink("http://127.0.0.1:8010/gateway.do", PARTNER, None)
    assert link.env() == {"ALIPAY_GATEWAY_URL": "http://127.0.0.1:8010/gateway.do",
                          "UNSIGN_SANDBOX": "1"}
    assert _settings(link).sandbox
    assert emulator_args(None) == []
    assert link.describe().startswith("off (--plain-http): http://127.0.0.1:8010/gateway.do")


@pytest.mark.parametrize(("url", "tls"), [("http://127.0.0.1:8010/gateway.do", True),
                                          ("https://localhost:8010/gateway.do", False)])
def test_an_emulator_that_serves_another_scheme_than_asked_stops_the_demo(
        tmp_path: Path, url: str, tls: bool) -> None:
    trust = prepare_tls(tmp_path) if tls else None
    with pytest.raises(DemoError, match="not what the demo asked for"):
        GatewayLink(url, PARTNER, trust)


def test_the_traffic_line_comes_from_the_emulators_counters_over_tls(tmp_path: Path) -> None:
    # Given the demo's PKI served by an emulator, and two gateway requests over one TLS connection
    trust = prepare_tls(tmp_path)
    state = EmulatorState(build_config(partner=PARTNER, key=KEY), [])
    context = server_ssl_context(trust.cert_file, trust.key_file)
    with EmulatorThread(state, ssl_context=context) as thread:
        link = GatewayLink(thread.url, PARTNER, trust)
        with requests.Session() as client:
            client.trust_env = False
            client.verify = str(trust.ca_file)
            for _ in range(2):
                assert client.post(thread.url, data={"service": "customer_unsign"},
                                   timeout=30).status_code == 200
        # Then the demo reports them from the emulator's counters, over TLS
        assert link.traffic() == "2 gateway requests on 1 connections, over TLS"
    # And says nothing once the emulator is gone
    assert link.traffic() is None


# --- the closing line on the demo's keys ------------------------------------------------------


def test_with_a_redis_of_its_own_the_demo_says_its_keys_go_with_it_and_how_to_keep_them() -> None:
    # Given the private Redis that 'make demo' starts when none answers, and no --keep
    line = keys_hint("redis://127.0.0.1:41234/0", "unsign-demo:", program="unsign-worker",
                     private=True, keep=False)
    # Then no command is offered that would find nothing; how to keep the keys is
    assert "UNSIGN_KEY_PREFIX=" not in line
    assert "private Redis that 'make demo' started, which stops with the demo" in line
    assert "'make demo KEEP=1'" in line and "redis-server --daemonize yes" in line


def test_with_keep_the_private_redis_is_named_in_a_command_that_works_while_the_demo_runs(
) -> None:
    line = keys_hint("redis://127.0.0.1:41234/0", "unsign-demo:",
                     program=".venv/bin/unsign-worker", private=True, keep=True)
    assert line.endswith("while it runs, from another shell: UNSIGN_REDIS_URL="
                         "redis://127.0.0.1:41234/0 UNSIGN_KEY_PREFIX=unsign-demo: "
                         ".venv/bin/unsign-worker status")


@pytest.mark.parametrize("keep", [False, True])
def test_a_redis_that_stays_is_named_in_the_command_unless_its_url_carries_a_password(
        keep: bool) -> None:
    plain = keys_hint("redis://127.0.0.1:6379/0", "unsign-demo:", program="unsign-worker",
                      private=False, keep=keep)
    assert plain == ("Its keys stay in redis://127.0.0.1:6379/0 under 'unsign-demo:' until the "
                     "next run: UNSIGN_REDIS_URL=redis://127.0.0.1:6379/0 "
                     "UNSIGN_KEY_PREFIX=unsign-demo: unsign-worker status")
    secret = keys_hint("redis://ops:hunter2@redis.example:6379/0", "unsign-demo:",
                       program="unsign-worker", private=False, keep=keep)
    assert "hunter2" not in secret
    assert secret.endswith("UNSIGN_KEY_PREFIX=unsign-demo: unsign-worker status (with "
                           "UNSIGN_REDIS_URL set to redis://ops:********@redis.example:6379/0)")


def test_with_redis_marks_a_private_redis_for_the_command_and_not_one_it_found(
        tmp_path: Path) -> None:
    # Given the command's environment printed by a command run under scripts/with_redis.py
    script = Path(__file__).resolve().parents[2] / "scripts" / "with_redis.py"
    show = [sys.executable, "-c", "import os; print(os.environ.get('UNSIGN_REDIS_URL'), "
                                  "os.environ.get('UNSIGN_REDIS_PRIVATE'))"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("UNSIGN_")}

    def run(*args: str, **env: str) -> list[str]:
        done = subprocess.run([sys.executable, str(script), *args, "--", *show],
                              env={**base, **env}, capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    # When it starts a private redis-server, the command is told; when it uses a given URL, not
    url, private = run("--private", UNSIGN_REDIS_PRIVATE="")
    assert url.startswith("redis://127.0.0.1:") and private == "1"
    assert run(UNSIGN_REDIS_URL="redis://127.0.0.1:1/0") == ["redis://127.0.0.1:1/0", "None"]


def test_the_data_line_names_each_share_by_how_its_rows_end_never_by_an_outcome_it_is_not() -> None:
    mix = Counter({"success": 80, "transient": 8, "TOO_MUCH_TYPE_CODE": 6, "not_found": 2,
                   "not_signed": 2, "bad_row": 2})
    line = describe_mix(mix, 100)
    assert line == ("80% clean, 8% transient errors, 6% escalations, "
                    "2% not found (rejected NOT_EXIST_CUST_SIGN), "
                    "2% not signed (rejected STATUS_CUSTOMER_SIGN), 2% bad rows (refused)")
    assert "already" not in line
