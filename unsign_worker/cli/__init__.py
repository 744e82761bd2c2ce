"""The ``unsign-worker`` command line: one module per command family.

``unsign-worker worker --pool gevent`` must monkey-patch before anything imports sockets,
threads or SSL. Celery's own ``maybe_patch_concurrency`` is not early enough on its own:
importing ``celery`` and touching its lazy attributes imports kombu, redis and ``ssl`` while
the patch runs (gevent then warns ``MonkeyPatchWarning: Monkey-patching ssl after ssl has
already been imported``, and TLS misbehaves). So gevent patches first, here, before ``celery``
is imported; this package is imported before any command module.
"""

import sys


def _pool(argv: list[str]) -> str | None:
    """The pool named by ``-P X``, ``--pool X`` or ``--pool=X``, or None."""
    for i, arg in enumerate(argv):
        if arg in ("-P", "--pool"):
            return argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith("--pool="):
            return arg.split("=", 1)[1]
    return None


if len(sys.argv) > 1 and sys.argv[1] == "worker":
    if _pool(sys.argv) == "gevent":
        from gevent import monkey

        monkey.patch_all()

    from celery import maybe_patch_concurrency  # sets up the pool (patching again is a no-op)

    maybe_patch_concurrency(sys.argv, ["-P"], ["--pool"])
