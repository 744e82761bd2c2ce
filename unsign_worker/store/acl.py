"""The three Redis ACL roles of a deployment, for one key prefix (see docs/security.md).

- ``producer``: an application that asks for unsigns through the inbox. It may add entries to
  ``P inbox`` (``XADD`` only: it cannot read other producers' entries) and read job records,
  reference bindings and reference conflicts (``P job:*``, ``P ref:*``, ``P conflicts:*``). It
  cannot write a job record, an agreement's dedup record, the breaker or the dead-letter queue,
  cannot push to the broker's queues, and has no Pub/Sub channel, so it can send no Celery
  remote-control command (``cancel_consumer``, ``shutdown``) and no event.
- ``worker``: the worker processes: every non-dangerous command on the prefix's keys (the
  broker's queues live there too, through kombu's ``global_keyprefix``) and every channel
  (Celery's events and remote control; Redis matches a ``PSUBSCRIBE`` pattern only against an
  identical ACL pattern, so no narrower channel rule works across databases).
- ``operator``: the command line and Flower: the same Redis rights as a worker (requeue, resolve,
  reset the breaker, steer campaigns, read everything), as its own user so that its use can be
  told apart and revoked; it never holds the Alipay key.

Pure: strings in, strings out.
"""

from __future__ import annotations

import re

ROLES = ("producer", "worker", "operator")
#: A key prefix usable in an ACL key pattern (no glob characters, no spaces).
_PREFIX_RE = re.compile(r"[A-Za-z0-9:_.\-/]+")

_PRODUCER_COMMANDS = ("-@all", "+ping", "+hello", "+client|setname",
                      "+select", "+xadd", "+get", "+exists", "+hget", "+hmget", "+hgetall",
                      "+smembers", "+sismember", "+scard")
_FULL_COMMANDS = ("+@all", "-@dangerous")


def rules(role: str, prefix: str) -> list[str]:
    """The ACL rules of ``role`` for key prefix ``prefix`` (no user name, no password).

    Raises:
        ValueError: an unknown role, or a prefix that cannot be used in a key pattern.
    """
    if role not in ROLES:
        raise ValueError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"key prefix: {prefix!r} must be letters, digits and ':_.-/' only "
                         "(no glob characters) to be used in an ACL key pattern")
    if role == "producer":
        return ["resetkeys", "resetchannels", *_PRODUCER_COMMANDS, f"%W~{prefix}inbox",
                f"%R~{prefix}job:*", f"%R~{prefix}ref:*", f"%R~{prefix}conflicts:*"]
    return ["resetkeys", "resetchannels", *_FULL_COMMANDS, f"~{prefix}*", "allchannels"]


def acl_file(prefix: str, user_prefix: str = "unsign-") -> str:
    """ACL-file lines (``aclfile``) for the three roles; passwords left to the reader."""
    lines = [f"# Redis ACL users for key prefix {prefix!r} (unsign-worker acl).",
             "# Give each user its password: append  >password  (or  #<sha256 hex>)  to its",
             "# line; a user without one cannot log in."]
    for role in ROLES:
        lines.append(f"user {user_prefix}{role} on {' '.join(rules(role, prefix))}")
    return "\n".join(lines) + "\n"
