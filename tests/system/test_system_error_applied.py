"""``SYSTEM_ERROR`` / ``ILLEGAL_SYSTEM`` after which the unsign may or may not have happened,
through real worker processes and the emulator over TLS.

The usage rules ask to retry these codes with the original request because "支付宝系统未来得及
响应，用户可能未解约成功". The emulator's ``system_error_applied_share`` decides which it was:

- share 1.0: the gateway unsigned the agreement and still answered the error. The worker
  retries, hears ``STATUS_CUSTOMER_SIGN`` and, since its earlier attempt reached the gateway,
  settles the job ``already_unsigned`` (a success; for ``biz_type`` 10004 + ``user_email`` after
  query_customer_protocol confirms it);
- share 0.0: nothing happened; the retry unsigns and the job ends ``unsigned``.

Either way each agreement is unsigned exactly once at the gateway and the success hook runs
once per job.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests import paths
from tests.hook_target import calls
from tests.plugins.emulator import KEY, PARTNER, cae, partner_protocol
from tests.plugins.worker_fixtures import wait_for

pytestmark = pytest.mark.slow
ROOT = paths.ROOT
CODES = ("SYSTEM_ERROR", "ILLEGAL_SYSTEM")
FORMS = ("customer_code", "type_code+trans_account_out", "biz_type+user_email")
#: Generous deadlines for jobs and hooks (the retries' countdowns are capped at 2 s here).
JOBS_SECONDS = 180
HOOKS_SECONDS = 90


def cases() -> list[tuple[str, str, int]]:
    """(form, code, agreement number) for every form and code."""
    return [(form, code, 1 + i * len(CODES) + j)
            for i, form in enumerate(FORMS) for j, code in enumerate(CODES)]


def params(form: str, n: int) -> dict[str, str]:
    if form == "customer_code":
        return {"customer_code": f"C{n:05d}"}
    if form == "type_code+trans_account_out":
        return {"type_code": "BUSI0031", "trans_account_out": f"2088{n:012d}0156"}
    return {"biz_type": "10004", "user_email": f"user{n}@example.com"}


@pytest.mark.parametrize(("share", "state", "code"), [
    (1.0, "already_unsigned", "STATUS_CUSTOMER_SIGN"),
    (0.0, "unsigned", ""),
])
def test_a_system_error_that_may_have_unsigned_ends_in_one_unsign_and_one_hook_run(
        emulator_factory, worker_env_factory, key_prefix, redis_client, share, state, code):
    # Given a TLS gateway where each agreement first answers SYSTEM_ERROR or ILLEGAL_SYSTEM,
    # having applied the unsign (share 1.0) or not (share 0.0), and a worker with a hook
    made = [(partner_protocol if form == "biz_type+user_email" else cae)(
        f"a{n}", n, script=(error,)) for form, error, n in cases()]
    gw = emulator_factory(made, scenario={"faults": {"system_error_applied_share": share}})
    hooks = f"{key_prefix}hookcalls"
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                             UNSIGN_SUCCESS_HOOK="tests.hook_target:record",
                             UNSIGN_TEST_HOOK_LIST=hooks, PYTHONPATH=str(ROOT))
    env.start_worker("w1")

    # When one job per agreement runs
    ids = {n: env.enqueue(params(form, n)) for form, _, n in cases()}
    jobs = env.wait_terminal(list(ids.values()), timeout=JOBS_SECONDS)

    # Then every job ends as a success of the expected kind, after one retry of its error
    assert {(j["state"], j.get("code", "")) for j in jobs.values()} == {(state, code)}, (
        jobs, env.log_tail())
    audit = env.audit()
    for _, error, n in cases():
        assert error in {a["code"] for a in audit if a["job_id"] == ids[n]}, audit
    # And the gateway unsigned each agreement exactly once, the retry reaching it once more
    stats = gw.stats()
    assert stats["faults"].get("ERROR_APPLIED", 0) == (len(made) if share else 0)
    for _, _, n in cases():
        counts = stats["agreements"][f"a{n}"]
        assert (counts["requests"], counts["unsigns"]) == (2, 1), (n, counts)
        assert counts["after_success"] == (1 if share else 0), (n, counts)
    assert stats["duplicates"] == 0
    # only the biz_type 10004 jobs confirm a STATUS_CUSTOMER_SIGN with a query
    assert stats["query_requests"] == (len(CODES) if share else 0)
    # And the success hook ran once per job
    wait_for(lambda: len(calls(redis_client, hooks)) >= len(ids), timeout=HOOKS_SECONDS,
             what="a success hook run per job")
    wait_for(lambda: redis_client.zcard(env.keys.hooks) == 0, timeout=HOOKS_SECONDS,
             what="the hooks to be settled")
    runs = Counter(calls(redis_client, hooks))
    assert len(runs) == len(ids) and set(runs.values()) == {1}, runs
