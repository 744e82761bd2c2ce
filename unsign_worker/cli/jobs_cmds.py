"""``unsign-worker enqueue`` (one job from a shell) and ``unsign-worker job show``.

(Exit codes are imported from :mod:`unsign_worker.cli.main` inside the commands: main imports
this module while it loads.)
"""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from unsign_worker.cli._ops import console, echo_json, when
from unsign_worker.cli.common import fail, load_settings, redis_for
from unsign_worker.protocol.exceptions import ValidationError


@click.command("enqueue", epilog="""Examples:

\b
  unsign-worker enqueue --customer-code C00000000042 --reference order-42
  unsign-worker enqueue --type-code BUSI01 --trans-account-out 20880020070189160156 --wait
  unsign-worker enqueue --biz-type 10004 --user-email buyer@example.com --wait --json
""")
@click.option("--customer-code", default="", help="The customer's agreement code.")
@click.option("--type-code", default="", help="The merchant agreement (with --trans-account-out).")
@click.option("--trans-account-out", default="", help="The customer's RMB fund account.")
@click.option("--biz-type", default="", help="10004 for sign_protocol_with_partner agreements.")
@click.option("--user-email", default="", help="The customer's Alipay login (with --biz-type).")
@click.option("--reference", default="", help="Your id for this job: enqueueing the same "
              "reference again returns the same job.")
@click.option("--wait", "wait_", is_flag=True, help="Wait until the job has ended.")
@click.option("--timeout", default=120.0, show_default=True, type=click.FloatRange(min=0),
              help="With --wait: give up waiting after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as one JSON object.")
def enqueue_cmd(customer_code: str, type_code: str, trans_account_out: str, biz_type: str,
                user_email: str, reference: str, wait_: bool, timeout: float,
                as_json: bool) -> None:
    """Validate and enqueue one unsign job; print its id.

    Exit codes: 0 queued (or, with --wait, ended well), 1 invalid job or timeout, 3 (with
    --wait) the job was rejected or dead-lettered.
    """
    from unsign_worker.cli.main import EXIT_ERROR, EXIT_FINISHED_WITH_FAILURES
    from unsign_worker.producers.admission import ReferenceConflictError
    from unsign_worker.producers.operator_client import OperatorClient

    settings = load_settings()
    redis_for(settings)  # fail early and clearly if Redis is down
    with OperatorClient(broker_url=settings.broker_url, redis_url=settings.redis_url,
                      key_prefix=settings.key_prefix,
                      input_charset=settings.input_charset) as client:
        try:
            job_id = client.enqueue(customer_code=customer_code, type_code=type_code,
                                    trans_account_out=trans_account_out, biz_type=biz_type,
                                    user_email=user_email, reference=reference)
        except ValidationError as exc:
            for error in exc.errors:
                click.echo(f"error: --{error.field.replace('_', '-')}: {error.message} "
                           f"[{error.rule}]", err=True)
            raise click.exceptions.Exit(EXIT_ERROR) from None
        except ReferenceConflictError as exc:
            fail(f"--reference: {exc} (this request is recorded as job {exc.rejected_job_id}, "
                 "rejected REFERENCE_CONFLICT)")
        if not wait_:
            status = client.status(job_id)
            if as_json and status is not None:
                echo_json(status.as_dict())
            else:
                click.echo(job_id)
            return
        try:
            status = client.wait(job_id, timeout=timeout)
        except TimeoutError as exc:
            fail(f"{exc}; see `unsign-worker job show {job_id}`")
    if as_json:
        echo_json(status.as_dict())
    else:
        detail = f" {status.code}" if status.code else ""
        click.echo(f"{job_id} {status.state}{detail}")
    if status.is_failure:
        raise click.exceptions.Exit(EXIT_FINISHED_WITH_FAILURES)


@click.group("job")
def job_group() -> None:
    """Single jobs."""


@job_group.command("show", epilog="""Examples:

\b
  unsign-worker job show 3f2a9c0d5e6b4a718293a4b5c6d7e8f9
  unsign-worker job show --reference order-42 --json
  unsign-worker job show --reference order-42 --producer crm
""")
@click.argument("job_id", required=False)
@click.option("--reference", default="", help="Find the job by its reference (the operator's, "
              "or with --producer that producer's).")
@click.option("--producer", default="", metavar="NAME",
              help="With --reference: the producer whose reference it is.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def job_show(job_id: str | None, reference: str, producer: str, as_json: bool) -> None:
    """Show one job: state, code, reason, attempts, times, parameters (masked)."""
    from unsign_worker.producers.job_status import JobStatus
    from unsign_worker.store.keys import Keys

    if bool(job_id) == bool(reference):
        fail("give a JOB_ID or --reference (one of them)", 2)
    settings = load_settings()
    client = redis_for(settings)
    keys = Keys(settings.key_prefix)
    if reference:
        found = client.get(keys.reference(producer, reference))
        if found is None:
            owner = f" of producer {producer}" if producer else " of the operator"
            fail(f"no job has the reference {reference!r}{owner}")
        job_id = found.decode()
    assert job_id is not None
    raw = client.hgetall(keys.job(job_id))
    if not raw:
        fail(f"no job {job_id} (unknown, or its record has expired)")
    status = JobStatus.from_record(job_id, raw)
    if as_json:
        echo_json(status.as_dict())
        return
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    data = status.as_dict()
    for name in ("job_id", "state", "code", "reason", "attempts", "campaign", "reference",
                 "original"):
        if data[name] not in ("", None):
            table.add_row(name, escape(str(data[name])))
    for name in ("created_at", "updated_at", "finished_at"):
        if data[name]:
            table.add_row(name, when(data[name]))
    for name, value in (status.params_masked or {}).items():
        table.add_row(name, escape(str(value)))
    console().print(table)


def register(group: click.Group) -> None:
    group.add_command(enqueue_cmd)
    group.add_command(job_group)
