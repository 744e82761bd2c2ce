"""The deployment files: docker-compose.yml, Dockerfile, .env.example, the entry point.

``docker compose config`` validates the compose file when the docker client has the compose
plugin; the structure checks (persistence, secrets from files, health checks, scaling, the
sandbox profile) run on the parsed YAML everywhere.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests import paths
from tests.plugins.console_fixtures import send
from tests.plugins.worker_fixtures import BIN, wait_for
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.runner import EmulatorThread
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.emulator.tls import make_sandbox_pki, server_ssl_context
from unsign_worker.settings import Settings, check_gateway_url

ROOT = paths.ROOT
COMPOSE = ROOT / "docker-compose.yml"
LONG_RUNNING = ("redis", "worker", "flower", "console", "emulator", "sandbox-worker")
SECRET_VARIABLES = ("ALIPAY_KEY", "UNSIGN_REDIS_URL", "UNSIGN_BROKER_URL", "FLOWER_BASIC_AUTH",
                    "ALIPAY_PRIVATE_KEY")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _compose_plugin() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    run = subprocess.run([docker, "compose", "version"], capture_output=True, text=True,
                         timeout=60)
    return docker if run.returncode == 0 else None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = _compose_plugin()
    if docker is None:
        pytest.skip("the docker client here has no compose plugin ('docker compose version' "
                    "fails); the structure tests below still check the file")
    # Given a project folder with the example configuration and dummy secrets
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    (tmp_path / "secrets").mkdir()
    for name in ("redis_password", "redis_url", "alipay_key", "flower_basic_auth",
                 "console_auth"):
        (tmp_path / "secrets" / name).write_text("x", encoding="utf-8")
    for profile in ([], ["--profile", "sandbox"]):
        run = subprocess.run([docker, "compose", *profile, "config", "--quiet"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr


def test_redis_persists_append_only_with_a_password_from_a_secret_and_no_eviction(
        compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert "requirepass" in command and "/run/secrets/redis_password" in command
    assert "redis_password" in redis["secrets"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "ports" not in redis, "Redis must not be published on the host"


def test_the_worker_scales_and_reads_its_secrets_from_files(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker, "--scale needs neither"
    assert "%h" in worker["command"][worker["command"].index("--hostname") + 1]
    assert worker["environment"]["ALIPAY_KEY_FILE"] == "/run/secrets/alipay_key"
    assert worker["environment"]["UNSIGN_REDIS_URL_FILE"] == "/run/secrets/redis_url"
    assert {"alipay_key", "redis_url"} <= set(worker["secrets"])
    assert worker["stop_grace_period"] and worker["depends_on"]["redis"]["condition"] == \
        "service_healthy"


def test_no_service_carries_a_secret_in_its_environment(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        for variable in SECRET_VARIABLES:
            assert variable not in environment, f"{name} sets {variable}: use {variable}_FILE"


def test_every_secret_is_a_file_under_the_secrets_folder(compose: dict[str, Any]) -> None:
    for name, secret in compose["secrets"].items():
        assert secret["file"].startswith("./secrets/"), name
    used = {s for service in compose["services"].values() for s in service.get("secrets", [])}
    assert used == set(compose["secrets"])


def test_flower_requires_auth_and_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert "--no-auth" not in flower["command"]
    assert flower["environment"]["FLOWER_BASIC_AUTH_FILE"] == "/run/secrets/flower_basic_auth"
    assert all(str(p).startswith("127.0.0.1:") for p in flower["ports"])
    assert "--max-tasks" in flower["command"]


def test_the_console_requires_auth_from_a_secret_and_is_published_on_loopback_only(
        compose: dict[str, Any]) -> None:
    console = compose["services"]["console"]
    assert console["command"][:2] == ["unsign-worker", "console"]
    assert console["environment"]["UNSIGN_CONSOLE_AUTH_FILE"] == "/run/secrets/console_auth"
    assert "console_auth" in console["secrets"]
    assert all(str(p).startswith("127.0.0.1:") for p in console["ports"])


def test_the_console_gets_no_alipay_key_and_names_the_hosts_it_answers(
        compose: dict[str, Any]) -> None:
    console = compose["services"]["console"]
    # it signs nothing: no Alipay variable at all, no key mounted
    assert not [v for v in console["environment"] if v.startswith("ALIPAY_")]
    assert not [s for s in console["secrets"] if "alipay" in s]
    assert set(console["secrets"]) == {"redis_url", "console_auth"}
    assert console["environment"]["UNSIGN_REDIS_URL_FILE"] == "/run/secrets/redis_url"
    hosts = console["environment"]["UNSIGN_CONSOLE_HOSTS"]
    assert "localhost:${CONSOLE_PORT:-5560}" in hosts and "${CONSOLE_HOSTS:-}" in hosts
    assert console["ports"] == ["127.0.0.1:${CONSOLE_PORT:-5560}:5560"]


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME:-default}`` (the only form the file uses), from ``env``."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), value)


@pytest.mark.slow
def test_the_console_starts_from_its_compose_service_without_an_alipay_key(
        compose: dict[str, Any], tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    # Given the console service's environment as compose would give it: the .env file, then its
    # own variables, secrets as files (only the two it mounts), through the image's entry point
    console = compose["services"]["console"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "redis_url").write_text(redis_url, encoding="utf-8")
    (secrets / "console_auth").write_text("ops:compose-console-password\n", encoding="utf-8")
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    for name, value in console["environment"].items():
        env[name] = _interpolate(str(value), env).replace("/run/secrets", str(secrets))
    env["UNSIGN_KEY_PREFIX"] = key_prefix  # the test's keys, not the example's "unsign:"
    assert not [name for name in env if name.startswith("ALIPAY_KEY")]
    command = list(console["command"])
    command[command.index("--port") + 1] = "0"
    log = tmp_path / "console.log"
    proc = subprocess.Popen(["sh", str(ROOT / "scripts" / "docker-entrypoint.sh"), *command],
                            env=env, cwd=tmp_path, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Then it listens, on the wildcard address as in its container
        found = wait_for(lambda: proc.poll() is not None or re.search(
            r"console: http://0\.0\.0\.0:(\d+)/ \(1 user", log.read_text()), timeout=60,
            what="the console to listen")
        assert proc.poll() is None, log.read_text()
        port = int(found.group(1))
        base = f"http://127.0.0.1:{port}"
        # its container health check passes, the operator signs in, a foreign Host is refused
        check = subprocess.run([str(BIN / "python"), str(ROOT / "scripts" / "healthcheck.py"),
                                "console", str(port)], capture_output=True, text=True,
                               timeout=60)
        assert check.returncode == 0, check.stderr
        auth = "ops:compose-console-password"
        assert send(base, "GET", "/health").status == 401
        assert send(base, "GET", "/health", auth=auth).status == 200
        assert send(base, "GET", "/health", auth=auth, host="localhost:5560").status == 200
        assert send(base, "GET", "/health", auth=auth,
                    host=f"rebind.attacker.example:{port}").status == 421
        # and no Alipay variable reached the process
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if v.startswith(b"ALIPAY_KEY")]
        assert b"UNSIGN_REDIS_URL_FILE" not in b"".join(environ)  # the entry point read it
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_the_emulator_runs_only_under_the_sandbox_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("emulator", "sandbox-worker"):
        assert services[name]["profiles"] == ["sandbox"], name
    for name in ("redis", "worker", "flower"):
        assert "profiles" not in services[name], name
    sandbox = services["sandbox-worker"]
    assert sandbox["network_mode"] == "service:emulator"
    assert "UNSIGN_SANDBOX" not in services["worker"]["environment"]


def test_the_sandbox_runs_over_tls_with_productions_settings(compose: dict[str, Any]) -> None:
    services = compose["services"]
    emulator, sandbox = services["emulator"], services["sandbox-worker"]
    # The emulator serves HTTPS with a sandbox PKI on the shared volume, and is checked over it
    command = " ".join(emulator["command"])
    assert "--tls-dir /sandbox/tls" in command
    assert emulator["healthcheck"]["test"][-3:] == ["emulator", "8010", "/sandbox/tls/ca.pem"]
    # The worker reaches it as production reaches Alipay: https, a host name, the CA it trusts
    environment = sandbox["environment"]
    assert environment["ALIPAY_GATEWAY_URL"] == "https://localhost:8010/gateway.do"
    assert environment["ALIPAY_GATEWAY_ALLOWED_HOSTS"] == "localhost"
    assert environment["ALIPAY_CA_BUNDLE"] == "/sandbox/tls/ca.pem"
    assert "UNSIGN_SANDBOX" not in environment
    assert any(v.startswith("sandbox-data:/sandbox") for v in sandbox["volumes"])
    settings = Settings.from_env({"ALIPAY_PARTNER": "2088101568338364", "ALIPAY_KEY": "k" * 32,
                                  **environment}, load_dotenv=False)
    check_gateway_url(settings.gateway_url, sandbox=settings.sandbox,
                      allowed_hosts=settings.gateway_allowed_hosts)
    assert not settings.sandbox


def _healthcheck() -> Any:
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "scripts" /
                                                  "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_emulators_health_check_speaks_tls_when_given_its_ca(tmp_path: Path) -> None:
    # Given an emulator serving HTTPS with a sandbox PKI
    pki = make_sandbox_pki(tmp_path / "tls")
    state = EmulatorState(build_config(partner="2088101568338364", key="k" * 32), [])
    healthcheck = _healthcheck()
    with EmulatorThread(state, ssl_context=server_ssl_context(pki.cert_file,
                                                              pki.key_file)) as thread:
        port = str(urlsplit(thread.url).port)
        # Then the check passes with its CA, and fails without it (plain HTTP) or with another
        assert healthcheck.main(["healthcheck.py", "emulator", port, str(pki.ca_file)]) == 0
        assert healthcheck.main(["healthcheck.py", "emulator", port]) == 1
        other = make_sandbox_pki(tmp_path / "other")
        assert healthcheck.main(["healthcheck.py", "emulator", port, str(other.ca_file)]) == 1


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        check = compose["services"][name]["healthcheck"]
        assert check["test"] and check["interval"], name
        for part in check["test"][1:]:
            if "healthcheck.py" in part:
                mode = check["test"][check["test"].index(part) + 1]
                assert mode in ("worker", "flower", "console", "emulator"), name


def test_configuration_comes_from_the_env_file(compose: dict[str, Any]) -> None:
    for name in ("worker", "flower"):
        env_file = compose["services"][name]["env_file"]
        assert env_file[0]["path"] == ".env"


def test_the_env_example_names_only_known_settings_and_holds_no_secret() -> None:
    settings_source = (ROOT / "unsign_worker" / "settings.py").read_text(encoding="utf-8")
    compose_text = COMPOSE.read_text(encoding="utf-8")
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"not NAME=value: {line!r}"
        assert name not in SECRET_VARIABLES, f"{name} is a secret: use a file"
        if name.startswith(("ALIPAY_", "UNSIGN_")) and name != "UNSIGN_IMAGE_TAG":
            assert f'"{name}"' in settings_source, f"{name} is not a setting"
        else:
            assert "${" + name in compose_text, f"{name} is not used by the compose file"
        assert not re.fullmatch(r"[0-9a-z]{32}", value), f"{name} looks like a key"


def test_the_image_runs_as_an_unprivileged_user_through_the_entry_point() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]' in dockerfile
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored and "secrets/" in ignored


def test_the_entry_point_turns_secret_files_into_variables(tmp_path: Path) -> None:
    secret = tmp_path / "redis_url"
    secret.write_text("redis://:pw-from-file@redis:6379/0", encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "UNSIGN_REDIS_URL_FILE": str(secret)}
    run = subprocess.run(["sh", str(ROOT / "scripts" / "docker-entrypoint.sh"), "sh", "-c",
                          'printf "%s|%s" "$UNSIGN_REDIS_URL" "${UNSIGN_REDIS_URL_FILE:-}"'],
                         env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and run.stdout == "redis://:pw-from-file@redis:6379/0|"
    env["UNSIGN_REDIS_URL_FILE"] = str(tmp_path / "missing")
    run = subprocess.run(["sh", str(ROOT / "scripts" / "docker-entrypoint.sh"), "true"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and "UNSIGN_REDIS_URL_FILE: cannot read" in run.stderr
