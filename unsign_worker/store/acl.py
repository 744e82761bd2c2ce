"""The Redis ACL users of a deployment, for one key prefix (see docs/security.md).

- a **producer** ``<name>`` (one per application that asks for unsigns): may add entries to its
  own stream ``P inbox:<name>`` and read it, and read its own keys ``P producer:<name>:*``
  (the state of its jobs, never their parameters; its references, conflicts, refused entries
  and limits). It reads and writes nothing else: no job record, no other producer's stream or
  keys, no agreement's dedup record, breaker or dead-letter queue, none of the broker's
  queues, and no Pub/Sub channel, so it can send no Celery remote-control command
  (``cancel_consumer``, ``shutdown``) and no event. ``EVAL`` and ``FUNCTION`` are not allowed
  either: a script runs under its caller's rights anyway, and could hold Redis busy.
- ``worker``: the worker processes: every non-dangerous command on the prefix's keys (the
  broker's queues live there too, through kombu's ``global_keyprefix``) and every channel
  (Celery's events and remote control; Redis matches a ``PSUBSCRIBE`` pattern only against an
  identical ACL pattern, so no narrower channel rule works across databases).
- ``operator``: the command line, the console and Flower: the same Redis rights as a worker
  (requeue, resolve, reset the breaker, steer campaigns, read everything), as its own user so
  that its use can be told apart and revoked; it never holds the Alipay key.

Pure: strings in, strings out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from unsign_worker.store.keys import Keys, producer_name_error

#: The roles every deployment has; each producer is a user of its own besides.
ROLES = ("worker", "operator")
#: A key prefix usable in an ACL key pattern (no glob characters, no spaces).
_PREFIX_RE = re.compile(r"[A-Za-z0-9:_.\-/]+")

_PRODUCER_COMMANDS = ("-@all", "+ping", "+hello", "+client|setname", "+select", "+multi",
                      "+exec", "+discard", "+xadd", "+xlen", "+xrange", "+xrevrange", "+get",
                      "+exists", "+hget", "+hmget", "+hgetall", "+smembers", "+sismember",
                      "+scard")
_FULL_COMMANDS = ("+@all", "-@dangerous")


def _check_prefix(prefix: str) -> None:
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"key prefix: {prefix!r} must be letters, digits and ':_.-/' only "
                         "(no glob characters) to be used in an ACL key pattern")


def rules(role: str, prefix: str) -> list[str]:
    """The ACL rules of ``role`` (worker or operator) for key prefix ``prefix`` (no user name,
    no password).

    Raises:
        ValueError: an unknown role, or a prefix that cannot be used in a key pattern.
    """
    if role not in ROLES:
        raise ValueError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    _check_prefix(prefix)
    return ["resetkeys", "resetchannels", *_FULL_COMMANDS, f"~{prefix}*", "allchannels"]


def producer_rules(name: str, prefix: str) -> list[str]:
    """The ACL rules of producer ``name`` for key prefix ``prefix``.

    Raises:
        ValueError: a name that is not a producer's, or a prefix unusable in a key pattern.
    """
    if (error := producer_name_error(name)) is not None:
        raise ValueError(error)
    _check_prefix(prefix)
    keys = Keys(prefix)
    return ["resetkeys", "resetchannels", *_PRODUCER_COMMANDS, f"~{keys.inbox(name)}",
            f"%R~{keys.producer_space(name)}*"]


def acl_file(prefix: str, user_prefix: str = "unsign-", producers: Sequence[str] = ()) -> str:
    """ACL-file lines (``aclfile``) for the worker and operator, and one user per producer
    (``<user_prefix>producer-<name>``); passwords left to the reader."""
    lines = [f"# Redis ACL users for key prefix {prefix!r} (unsign-worker acl).",
             "# Give each user its password: append  >password  (or  #<sha256 hex>)  to its",
             "# line; a user without one cannot log in."]
    for role in ROLES:
        lines.append(f"user {user_prefix}{role} on {' '.join(rules(role, prefix))}")
    if not producers:
        lines.append("# No producer: each application that enqueues gets its own user, "
                     "printed by  unsign-worker acl --producer NAME")
    for name in dict.fromkeys(producers):
        lines.append(f"user {user_prefix}producer-{name} on "
                     f"{' '.join(producer_rules(name, prefix))}")
    return "\n".join(lines) + "\n"
