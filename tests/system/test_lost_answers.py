"""A lost answer, for each form of agreement, through real worker processes and the emulator.

The gateway unsigns the agreement but its answer never arrives. The worker sends the same
request again, hears that the agreement is not signed any more, and settles the job
``already_unsigned``: directly for CAE agreements (customer_code; type_code + trans_account_out),
after query_customer_protocol confirms it for biz_type 10004 + user_email. The agreement is
unsigned once and the success hook runs once.
"""

from __future__ import annotations

import pytest

from tests import paths
from tests.hook_target import calls
from tests.plugins.emulator import KEY, PARTNER, cae, partner_protocol
from tests.plugins.worker_fixtures import wait_for

pytestmark = pytest.mark.slow
ROOT = paths.ROOT
AGREEMENT = 3
FORMS = {
    "customer_code": {"customer_code": f"C{AGREEMENT:05d}"},
    "type_code+trans_account_out": {"type_code": "BUSI0031",
                                    "trans_account_out": f"2088{AGREEMENT:012d}0156"},
    "biz_type+user_email": {"biz_type": "10004", "user_email": f"user{AGREEMENT}@example.com"},
}


@pytest.mark.parametrize("form", list(FORMS))
def test_a_lost_answer_ends_already_unsigned_with_the_hook_run_once(
        emulator_factory, worker_env_factory, key_prefix, redis_client, form):
    make = partner_protocol if form == "biz_type+user_email" else cae
    gw = emulator_factory([make("a1", AGREEMENT, script=("LOST_ANSWER",))])
    hooks = f"{key_prefix}hookcalls"
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                             UNSIGN_SUCCESS_HOOK="tests.hook_target:record",
                             UNSIGN_TEST_HOOK_LIST=hooks, PYTHONPATH=str(ROOT))
    env.start_worker("w1")

    job_id = env.enqueue(FORMS[form])
    job = env.wait_terminal([job_id], timeout=120)[job_id]

    assert job["state"] == "already_unsigned", job
    assert job["code"] == "STATUS_CUSTOMER_SIGN"
    assert gw.unsigns("a1") == 1
    assert gw.state.stats.query_requests == (1 if form == "biz_type+user_email" else 0)
    wait_for(lambda: calls(redis_client, hooks), timeout=60, what="the success hook")
    wait_for(lambda: redis_client.zcard(env.keys.hooks) == 0, timeout=60,
             what="the hook to be settled")
    assert len(calls(redis_client, hooks)) == 1
