"""One owner of the job record: only ``unsign_worker/store/`` writes a job's hash
(``Keys.job(...)``), registers a Lua script or runs one."""

from __future__ import annotations

import ast
from pathlib import Path

import unsign_worker

PACKAGE = Path(unsign_worker.__file__).resolve().parent
STORE = PACKAGE / "store"

#: Redis commands that change a key.
WRITES = frozenset({
    "hset", "hsetnx", "hmset", "hdel", "hincrby", "hincrbyfloat", "delete", "unlink", "expire",
    "pexpire", "expireat", "pexpireat", "persist", "rename", "renamenx", "set", "getdel",
    "copy", "restore",
})
#: Calls that run Lua: only the store owns scripts.
SCRIPTING = frozenset({"register_script", "eval", "evalsha", "script_load"})


def _is_job_key(node: ast.AST, aliases: set[str]) -> bool:
    """Whether ``node`` is, or contains, ``<anything>.job(...)`` or a name bound to one."""
    for sub in ast.walk(node):
        if (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)
                and sub.func.attr == "job"):
            return True
        if isinstance(sub, ast.Name) and sub.id in aliases:
            return True
    return False


def offences(source: str, filename: str = "<planted>") -> list[str]:
    """Job-hash writes and script calls in one module's source, as ``file:line: call``."""
    tree = ast.parse(source, filename)
    aliases: set[str] = set()
    for node in ast.walk(tree):  # names bound to a job key anywhere in the module
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if _is_job_key(node.value, set()):
                aliases |= {t.id for t in targets if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name = node.func.attr
        args = [*node.args, *(k.value for k in node.keywords)]
        if name in SCRIPTING or (name in WRITES and any(_is_job_key(a, aliases)
                                                         for a in args)):
            found.append(f"{filename}:{node.lineno}: {name}")
    return found


def test_no_module_outside_the_store_writes_a_job_record_or_runs_a_script() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORE in path.parents:
            continue
        found += offences(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))

    assert found == []


def test_the_store_itself_is_where_job_records_are_written() -> None:
    # the check sees the store's own writes: it is not blind to the code it guards
    found = offences((STORE / "job_records.py").read_text(encoding="utf-8"))

    assert any(line.endswith(": hset") for line in found)
    assert any(line.endswith(": expire") for line in found)


def test_a_planted_write_of_a_job_record_is_found() -> None:
    planted = '''
def mark(client, keys, job_id, pipe):
    client.hset(keys.job(job_id), "state", "queued")
    key = keys.job(job_id)
    pipe.expire(key, 60)
    client.hincrby(name=keys.job(job_id), key="attempts", amount=1)
    client.hset(keys.agreement("x"), "state", "held")  # not a job record
    client.hgetall(keys.job(job_id))  # a read
'''

    assert offences(planted) == ["<planted>:3: hset", "<planted>:5: expire",
                                 "<planted>:6: hincrby"]


def test_a_planted_script_outside_the_store_is_found() -> None:
    planted = "script = client.register_script('return 1')\nclient.eval('return 1', 0)\n"

    assert offences(planted) == ["<planted>:1: register_script", "<planted>:2: eval"]
