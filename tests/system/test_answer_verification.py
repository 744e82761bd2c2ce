"""Never an unverified answer (technical document 7.2): nothing that sends to the gateway starts
without the means to verify its answers, and a forged success never counts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, rsa

from tests import paths
from tests.plugins.scripted_http import Request, ScriptedServer, answer
from unsign_worker.producers.client import UnsignClient
from unsign_worker.producers.operator_client import OperatorClient
from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.settings import Secret, Settings
from unsign_worker.worker.context import build_context
from unsign_worker.worker.processor import process_job

BIN = Path(sys.executable).parent
FORGED = (paths.DATA / "conformance" / "customer_unsign-5.3-success.xml"
          ).read_bytes().replace(b"  <sign>eb46497947ffddf5cd5c53711e122040</sign>\n"
                                 b"  <sign_type>MD5</sign_type>\n", b"")
#: Both ways in refuse such an environment: an application's (a producer) and the operator's.
CLIENTS = {"producer": lambda env: UnsignClient(producer="crm", env=env),
           "operator": lambda env: OperatorClient(env=env)}


def pem_pair(sign_type: str) -> tuple[bytes, bytes]:
    key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if sign_type == "RSA"
           else dsa.generate_private_key(key_size=2048))
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    files: dict[str, Path] = {}
    for sign_type in ("RSA", "DSA"):
        private, public = pem_pair(sign_type)
        files[f"{sign_type}-private"] = folder / f"{sign_type.lower()}-private.pem"
        files[f"{sign_type}-private"].write_bytes(private)
        files[f"{sign_type}-public"] = folder / f"{sign_type.lower()}-public.pem"
        files[f"{sign_type}-public"].write_bytes(public)
    files["junk"] = folder / "junk.pem"
    files["junk"].write_text("this is not a key\n")
    return files


# --- start-up ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("sign_type", "public"), [
    ("RSA", None), ("DSA", None), ("RSA", "missing"), ("RSA", "junk")])
@pytest.mark.slow
def test_the_worker_refuses_to_start_without_a_usable_alipay_public_key(
        keys, redis_url, tmp_path, sign_type, public):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "UNSIGN_"))}
    env.update(ALIPAY_PARTNER="2088101568338364", ALIPAY_SIGN_TYPE=sign_type,
               ALIPAY_PRIVATE_KEY_FILE=str(keys[f"{sign_type}-private"]),
               UNSIGN_REDIS_URL=redis_url, UNSIGN_KEY_PREFIX=f"t:{uuid.uuid4().hex[:8]}:")
    if public == "missing":
        env["ALIPAY_PUBLIC_KEY_FILE"] = str(tmp_path / "nowhere.pem")
    elif public == "junk":
        env["ALIPAY_PUBLIC_KEY_FILE"] = str(keys["junk"])
    done = subprocess.run([str(BIN / "unsign-worker"), "worker"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: ") and "ALIPAY_PUBLIC_KEY_FILE: " in lines[0]


@pytest.mark.slow
def test_a_celery_worker_of_the_app_started_by_hand_refuses_too(keys, redis_url, tmp_path):
    # Given RSA settings without Alipay's public key, and a worker started with Celery's own
    # command (the way a deployment may start it), not with unsign-worker
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "UNSIGN_"))}
    env.update(ALIPAY_PARTNER="2088101568338364", ALIPAY_SIGN_TYPE="RSA",
               ALIPAY_PRIVATE_KEY_FILE=str(keys["RSA-private"]), UNSIGN_REDIS_URL=redis_url,
               UNSIGN_KEY_PREFIX=f"t:{uuid.uuid4().hex[:8]}:", C_FORCE_ROOT="1")
    # When it starts
    done = subprocess.run([str(BIN / "celery"), "-A", "unsign_worker.worker.app", "worker",
                           "--pool", "solo", "--loglevel", "INFO"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    # Then it exits at start-up, before consuming anything, naming the variable
    assert done.returncode == 1, done.stderr[-2000:]
    assert "cannot start the worker: ALIPAY_PUBLIC_KEY_FILE: " in done.stderr
    assert "Traceback" not in done.stderr and "celery@" not in done.stderr


@pytest.mark.parametrize("sign_type", ["RSA", "DSA"])
def test_a_worker_context_needs_alipays_public_key(keys, sign_type):
    settings = Settings(partner="2088101568338364", sign_type=sign_type,
                        private_key_pem=Secret(keys[f"{sign_type}-private"].read_text()),
                        public_key_pem="")
    with pytest.raises(ConfigError, match=rf"^ALIPAY_PUBLIC_KEY_FILE: not set, but "
                                          rf"ALIPAY_SIGN_TYPE is {sign_type}"):
        build_context(settings)


def test_a_worker_context_needs_the_md5_key():
    with pytest.raises(ConfigError, match=r"^ALIPAY_KEY: not set"):
        build_context(Settings(partner="2088101568338364", key=Secret("")))


@pytest.mark.parametrize(("env", "message"), [
    ({"ALIPAY_SIGN_TYPE": "RSA"}, "ALIPAY_PUBLIC_KEY_FILE: not set"),
    ({"ALIPAY_SIGN_TYPE": "DSA"}, "ALIPAY_PUBLIC_KEY_FILE: not set"),
    ({"ALIPAY_SIGN_TYPE": "RSA", "ALIPAY_PUBLIC_KEY_FILE": "/nonexistent/alipay.pem"},
     "ALIPAY_PUBLIC_KEY_FILE: cannot read"),
    ({"ALIPAY_SIGN_TYPE": "RSA", "ALIPAY_PUBLIC_KEY_FILE": "junk"},
     "ALIPAY_PUBLIC_KEY_FILE: not a readable PEM public key"),
    ({"ALIPAY_SIGN_TYPE": "RSA", "ALIPAY_PUBLIC_KEY_FILE": "DSA-public"},
     "ALIPAY_PUBLIC_KEY_FILE: the key is not a RSA key"),
])
@pytest.mark.parametrize("make", list(CLIENTS.values()), ids=list(CLIENTS))
def test_the_client_refuses_an_environment_that_could_not_verify_answers(keys, env, message,
                                                                         make):
    env = {k: str(keys[v]) if v in keys else v for k, v in env.items()}
    with pytest.raises(ConfigError, match=f"^{message}") as caught:
        make(env)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("env", [{}, {"ALIPAY_SIGN_TYPE": "MD5"},
                                 {"ALIPAY_SIGN_TYPE": "RSA", "ALIPAY_PUBLIC_KEY_FILE":
                                  "RSA-public"}])
@pytest.mark.parametrize("make", list(CLIENTS.values()), ids=list(CLIENTS))
def test_the_client_starts_where_answers_can_be_verified(keys, env, make):
    env = {k: str(keys[v]) if v in keys else v for k, v in env.items()}
    make(env).close()


# --- a forged success -------------------------------------------------------------------------


def test_a_forged_unsigned_success_is_never_unsigned(make_ctx):
    # the 5.3 success sample without <sign>: structurally perfect, and worth nothing
    def forged(server: ScriptedServer, sock: socket.socket, request: Request) -> None:
        sock.sendall(answer(200, FORGED))

    with ScriptedServer(forged) as server:
        ctx = make_ctx(server, intask_retry_budget_seconds=0.5)
        decision = process_job(ctx, {"job_id": uuid.uuid4().hex,
                                     "params": {"customer_code": "1118400000013"}})
    assert (decision.state, decision.code) == ("retrying", "BAD_RESPONSE_SIGN")
    assert len(server.requests) >= 1


def test_an_unsigned_security_profile_error_stops_the_line_of_an_rsa_worker(keys, make_ctx):
    # a gateway with no RSA profile for the partner cannot sign its answer with one: the error
    # comes unsigned (like the 5.3 error sample) and is read as what it says, not as a forgery
    body = (paths.DATA / "conformance" / "customer_unsign-5.3-error.xml"
            ).read_bytes().replace(b"STATUS_CUSTOMER_SIGN", b"ILLEGAL_SECURITY_PROFILE")

    def no_profile(server: ScriptedServer, sock: socket.socket, request: Request) -> None:
        sock.sendall(answer(200, body))

    with ScriptedServer(no_profile) as server:
        ctx = make_ctx(server, sign_type="RSA", key=Secret(""),
                       private_key_pem=Secret(keys["RSA-private"].read_text()),
                       public_key_pem=keys["RSA-public"].read_text())
        decision = process_job(ctx, {"job_id": uuid.uuid4().hex,
                                     "params": {"customer_code": "1118400000013"}})
    assert (decision.state, decision.code) == ("parked", "ILLEGAL_SECURITY_PROFILE")
    assert len(server.requests) == 1
