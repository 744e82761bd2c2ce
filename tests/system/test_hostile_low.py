"""The smaller findings of a hostile review: URL redaction, the clients' URL rule, what ``sign``
signs, terminal escapes from campaign files, id formats in messages, private output files, and
Flower's container without the Alipay key."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests import paths
from tests.plugins.ports import free_port
from tests.producers.test_campaign_rows import errors_of, rows_of
from unsign_worker.cli.main import cli
from unsign_worker.producers.client import UnsignClient
from unsign_worker.producers.operator_client import OperatorClient
from unsign_worker.producers.reports import OutputFileError, open_output
from unsign_worker.protocol.exceptions import ConfigError, ValidationError
from unsign_worker.store.job import Job

ROOT = paths.ROOT


def run(env: dict[str, str], *args: str) -> Any:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "UNSIGN_"))}
    return CliRunner().invoke(cli, list(args), env={**clean, **env})


def test_a_password_holding_an_at_sign_is_never_printed() -> None:
    url = f"redis://:s3cr3t@pa55word@127.0.0.1:{free_port()}/0"
    result = run({"UNSIGN_REDIS_URL": url}, "status")
    assert result.exit_code != 0
    assert "s3cr3t" not in result.output and "pa55word" not in result.output
    assert ":********@127.0.0.1" in result.output


UNVERIFIED_URLS = ["rediss://127.0.0.1:6380/0?ssl_cert_reqs=none",
                   "rediss://127.0.0.1:6380/0?ssl_check_hostname=false"]


@pytest.mark.parametrize("name", ["broker_url", "redis_url"])
@pytest.mark.parametrize("url", UNVERIFIED_URLS)
def test_the_operator_client_refuses_a_url_that_turns_verification_off(name: str,
                                                                       url: str) -> None:
    kwargs = {"broker_url": "redis://127.0.0.1:6379/0", name: url}
    with pytest.raises(ConfigError, match=name):
        OperatorClient(**kwargs)


@pytest.mark.parametrize("url", UNVERIFIED_URLS)
def test_the_producer_client_refuses_a_url_that_turns_verification_off(url: str) -> None:
    with pytest.raises(ConfigError, match="redis_url"):
        UnsignClient(url, producer="crm")


def test_the_operator_client_refuses_a_campaign_id_that_is_not_one(redis_url: str,
                                                                   key_prefix: str) -> None:
    with OperatorClient(broker_url=redis_url, key_prefix=key_prefix) as client, \
            pytest.raises(ValidationError, match="campaign"):
        client.enqueue(customer_code="C00000000001", campaign="../x")


SIGN_ENV = {"ALIPAY_PARTNER": "2088101568338364", "ALIPAY_KEY": "k" * 32}


def test_sign_signs_only_the_services_of_this_product() -> None:
    refused = run(SIGN_ENV, "sign", "service=refund_fastpay_by_platform_pwd", "batch_no=1")
    assert refused.exit_code == 2 and "not a service of this product" in refused.output
    assert "sign_type" not in refused.output
    for service in ("customer_unsign", "query_customer_protocol"):
        signed = run(SIGN_ENV, "sign", f"service={service}", "biz_type=10004",
                     "user_email=a@example.com")
        assert signed.exit_code == 0, signed.output
        assert json.loads(signed.output)["sign"]


def test_an_unknown_json_lines_key_reaches_the_terminal_escaped() -> None:
    line = json.dumps({"customer_code": "C00000000001", "\x1b[2J\x1b]0;owned\x07x": "1"})
    [verdict] = rows_of(line + "\n", "jsonl")
    [(_, field, rule)] = errors_of(verdict)
    assert rule == "unknown_field" and field.isprintable() and "\\x1b[2J" in field


@pytest.mark.parametrize("message, field", [
    ({"job_id": "resolved", "params": {}}, "job_id"),
    ({"job_id": "A" * 32, "params": {}}, "job_id"),
    ({"job_id": "ab" * 16, "params": {}, "campaign": "x/../y"}, "campaign"),
    ({"job_id": "ab" * 16, "params": {}, "campaign": "c" * 49}, "campaign"),
])
def test_a_message_s_ids_must_have_the_id_formats(message: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Job.from_message(message)
    assert [e.field for e in caught.value.errors] == [field]
    assert Job.from_message({"job_id": "ab" * 16, "params": {}, "campaign": "c-3f9a1b2c4d5e"})


def test_an_output_file_is_private_and_never_written_through_a_symlink(tmp_path: Path) -> None:
    fresh = tmp_path / "report.csv"
    with open_output(fresh) as handle:
        handle.write("x\n")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    old = tmp_path / "old.csv"
    old.write_text("old")
    old.chmod(0o644)
    with open_output(old) as handle:
        handle.write("new")
    assert stat.S_IMODE(old.stat().st_mode) == 0o600 and old.read_text() == "new"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "link.csv"
    link.symlink_to(victim)
    with pytest.raises(OutputFileError, match="symbolic link"):
        open_output(link)
    assert victim.read_text() == "keep"


def test_an_export_command_refuses_a_symlink(tmp_path: Path, redis_url: str,
                                             key_prefix: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "dlq.csv"
    link.symlink_to(victim)
    result = run({"UNSIGN_REDIS_URL": redis_url, "UNSIGN_KEY_PREFIX": key_prefix},
                 "dlq", "export", "--out", str(link))
    assert result.exit_code == 1 and "symbolic link" in result.output
    assert victim.read_text() == "keep"


def test_flowers_container_gets_no_alipay_key() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    flower = compose["services"]["flower"]
    assert "alipay_key" not in flower["secrets"]
    assert not any(name.startswith("ALIPAY_") for name in flower["environment"])


def test_enqueue_names_the_job_recorded_for_a_reference_conflict(redis_url: str,
                                                                 key_prefix: str) -> None:
    env = {"UNSIGN_REDIS_URL": redis_url, "UNSIGN_KEY_PREFIX": key_prefix}
    assert run(env, "enqueue", "--customer-code", "C00000000001", "--reference", "o-9"
               ).exit_code == 0
    refused = run(env, "enqueue", "--customer-code", "C00000000002", "--reference", "o-9")
    assert refused.exit_code == 1 and "REFERENCE_CONFLICT" in refused.output
    job_id = refused.output.split("recorded as job ")[1].split(",")[0]
    shown = run(env, "job", "show", job_id, "--json")
    assert json.loads(shown.output)["code"] == "REFERENCE_CONFLICT"
