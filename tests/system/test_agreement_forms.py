"""Which fields name an agreement: one table (tests/data/agreement_forms.json) run against both
implementations, each on its own: the worker's protocol code (validation, identity, the
confirming query), the emulator's rules, the emulator process over HTTPS, and real worker
processes against the emulator (every case at once, then with every answer lost).

The table is data: neither implementation is imported to build what is expected.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import paths
from tests.plugins.emulator import KEY, PARTNER, Emulator
from tests.plugins.emulator_fixtures import EmulatorFactory
from tests.plugins.worker_fixtures import WorkerEnv
from unsign_worker.emulator import process as emulator_process
from unsign_worker.emulator import rules
from unsign_worker.emulator.agreements import AgreementBook, agreement_from_entry
from unsign_worker.protocol.exceptions import ValidationError
from unsign_worker.protocol.params import QUERY_SERVICE, UnsignRequest, build_query_params

TABLE: dict[str, Any] = json.loads((paths.DATA / "agreement_forms.json").read_text("utf-8"))
AGREEMENTS: list[dict[str, str]] = TABLE["agreements"]
CASES: list[dict[str, Any]] = TABLE["cases"]
NAMED = [case for case in CASES if "identity" in case["worker"]]
REFUSED = [case for case in CASES if "refused" in case["worker"]]
#: What every query carries besides the agreement's fields.
QUERY_FRAME = ("service", "partner", "_input_charset", "sign", "sign_type")


def by_case(argname: str = "case") -> pytest.MarkDecorator:
    return pytest.mark.parametrize(argname, CASES, ids=[case["name"] for case in CASES])


def test_the_table_names_an_agreement_where_both_implementations_accept() -> None:
    # the two columns agree on which cases are refused, and every named agreement is seeded
    seeded = {agreement["id"] for agreement in AGREEMENTS}
    for case in CASES:
        assert ("identity" in case["worker"]) == ("agreement" in case["emulator"]), case["name"]
        assert case["emulator"].get("agreement", "ag-code") in seeded, case["name"]
        assert all(case["in"].values()), "no empty value: strict gateways refuse those"
    named = [case["emulator"]["agreement"] for case in NAMED]
    assert len(named) == len(set(named)), "one agreement per case, so all can run at once"


# --- the worker's protocol code -----------------------------------------------------------------


@by_case()
def test_the_worker_validates_identifies_and_confirms_as_the_table_says(
        case: dict[str, Any]) -> None:
    request = UnsignRequest.from_mapping(case["in"])
    expected = case["worker"]
    if "refused" in expected:
        want = (expected["refused"]["field"], expected["refused"]["rule"])
        with pytest.raises(ValidationError) as caught:
            request.validate(charset="utf-8")
        assert want in {(e.field, e.rule) for e in caught.value.errors}
        assert f"{want[0]}: " in str(caught.value) and f"[{want[1]}]" in str(caught.value)
        with pytest.raises(ValidationError):  # no identity, so no dedup key either
            request.identity(PARTNER)
        with pytest.raises(ValidationError):
            build_query_params(request, partner=PARTNER, charset="utf-8")
        return
    identity = request.validate(charset="utf-8").identity(PARTNER)
    assert (identity.kind, list(identity.values)) == (expected["identity"]["kind"],
                                                      expected["identity"]["values"])
    if expected["query"] is None:
        with pytest.raises(ValidationError):
            build_query_params(request, partner=PARTNER, charset="utf-8")
        return
    query = build_query_params(request, partner=PARTNER, charset="utf-8")
    assert query["service"] == QUERY_SERVICE
    assert {k: v for k, v in query.items() if k not in QUERY_FRAME} == expected["query"]


# --- the emulator: its rules, then its process over HTTPS ------------------------------------


@by_case()
def test_the_emulator_rules_answer_as_the_table_says(case: dict[str, Any]) -> None:
    expected = case["emulator"]
    problems = rules.argument_problems(case["in"])
    if "answer" in expected:
        assert expected["answer"] == "ILLEGAL_ARGUMENT" and problems
        return
    assert problems == []
    assert rules.identity(case["in"]) == tuple(expected["identity"])
    book = AgreementBook.build([agreement_from_entry(dict(entry), f"agreements[{i}]")
                                for i, entry in enumerate(AGREEMENTS)])
    found = book.find(tuple(expected["identity"]))
    assert found is not None and found.id == expected["agreement"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One ``unsign-worker emulator`` process seeded with the table's agreements."""
    emulator = Emulator(AGREEMENTS, process=True,
                        workdir=tmp_path_factory.mktemp("agreement-forms"))
    emulator.start()
    yield emulator
    emulator.close()


@by_case()
def test_the_emulator_process_answers_as_the_table_says(gateway: Emulator,
                                                        case: dict[str, Any]) -> None:
    gateway.admin.reset()
    response = gateway.send(gateway.signed(**case["in"]))
    assert response.status_code == 200
    answer = ET.fromstring(response.content)
    unsigned = {a["id"] for a in AGREEMENTS
                if gateway.admin.agreement(a["id"])["status"] == "unsigned"}
    expected = case["emulator"]
    if "answer" in expected:
        assert (answer.findtext("is_success"), answer.findtext("error")) == (
            "F", expected["answer"])
        assert unsigned == set()
        return
    assert answer.findtext("is_success") == "T", response.text
    assert unsigned == {expected["agreement"]}
    seeded = next(a for a in AGREEMENTS if a["id"] == expected["agreement"])
    assert answer.findtext("response/customer/customer_code") == seeded["customer_code"]


# --- real worker processes ---------------------------------------------------------------------


def run_every_case(emulator_factory: EmulatorFactory,
                   worker_env_factory: Callable[..., WorkerEnv],
                   agreements: list[dict[str, Any]]) -> tuple[Emulator, dict[str, dict[str, str]]]:
    """Every case of the table as one job each, through one worker; the records by case."""
    gw = emulator_factory(agreements)
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    env.start_worker("w1")
    job_ids = {case["name"]: env.enqueue(dict(case["in"])) for case in CASES}
    jobs = env.wait_terminal(list(job_ids.values()), timeout=180)
    return gw, {name: jobs[job_id] for name, job_id in job_ids.items()}


def assert_refused_before_the_gateway(gw: Emulator, jobs: dict[str, dict[str, str]], *,
                                      sends_per_job: int) -> None:
    for case in REFUSED:
        job, refused = jobs[case["name"]], case["worker"]["refused"]
        assert (job["state"], job["code"]) == ("rejected", "INVALID_JOB"), (case["name"], job)
        assert f"{refused['field']}: " in job["reason"], job["reason"]
        assert f"[{refused['rule']}]" in job["reason"], job["reason"]
    # only the named cases' requests reached the gateway, each naming its own agreement
    named = {case["emulator"]["agreement"] for case in NAMED}
    sent = {agreement["id"]: gw.requests(agreement["id"]) for agreement in AGREEMENTS}
    assert sent == {a: sends_per_job if a in named else 0 for a in sent}
    assert gw.stats()["unsign_requests"] == sends_per_job * len(NAMED)


def assert_named_by_its_form(jobs: dict[str, dict[str, str]]) -> None:
    for case in NAMED:
        identity = case["worker"]["identity"]
        # the dedup identity (masked in the record) is of the table's form
        assert jobs[case["name"]]["identity_masked"].startswith(
            f"{identity['kind']}:{identity['values'][0]}"), jobs[case["name"]]


@pytest.mark.slow
def test_every_case_through_a_real_worker_unsigns_or_is_invalid_job(
        emulator_factory: EmulatorFactory,
        worker_env_factory: Callable[..., WorkerEnv]) -> None:
    # Given the table's agreements behind the emulator and one worker process
    # When every case is enqueued as a job
    gw, jobs = run_every_case(emulator_factory, worker_env_factory, AGREEMENTS)
    # Then a mixed or incomplete form is rejected INVALID_JOB naming field and rule, unsent,
    # and each named form unsigns exactly its agreement, once
    assert_refused_before_the_gateway(gw, jobs, sends_per_job=1)
    assert_named_by_its_form(jobs)
    for case in NAMED:
        assert jobs[case["name"]]["state"] == "unsigned", (case["name"], jobs[case["name"]])
        assert gw.unsigns(case["emulator"]["agreement"]) == 1
    assert gw.stats()["query_requests"] == 0


@pytest.mark.slow
def test_a_lost_answer_is_confirmed_with_exactly_the_pair_that_names_the_agreement(
        emulator_factory: EmulatorFactory, worker_env_factory: Callable[..., WorkerEnv],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given every answer lost once (the agreement is unsigned, the worker hears nothing), and
    # the emulator keeping a copy of each query_customer_protocol request it answers
    queries: list[dict[str, str]] = []
    answer_query = emulator_process.answer_query

    def recording(state: Any, params: dict[str, str], reply: Any) -> Any:
        queries.append({k: v for k, v in params.items() if k not in QUERY_FRAME})
        return answer_query(state, params, reply)

    monkeypatch.setattr(emulator_process, "answer_query", recording)
    lost = [dict(agreement, script=["LOST_ANSWER"]) for agreement in AGREEMENTS]
    # When every case is enqueued
    gw, jobs = run_every_case(emulator_factory, worker_env_factory, lost)
    # Then each named form ends already_unsigned after one real unsign; the one confirming
    # query per biz_type + user_email agreement carries exactly that pair, and no other form
    # is queried (the refused ones never reach the gateway at all)
    # (each named job sent twice: the request whose answer was lost, and the one repeating it)
    assert_refused_before_the_gateway(gw, jobs, sends_per_job=2)
    assert_named_by_its_form(jobs)
    for case in NAMED:
        job = jobs[case["name"]]
        assert (job["state"], job["code"]) == ("already_unsigned", "STATUS_CUSTOMER_SIGN"), job
        assert gw.unsigns(case["emulator"]["agreement"]) == 1
    expected = [case["worker"]["query"] for case in NAMED if case["worker"]["query"]]
    assert expected, "the table has biz_type + user_email cases"
    assert sorted(queries, key=json.dumps) == sorted(expected, key=json.dumps)
