"""The ``unsign-worker`` command line: one module per command family.

``unsign-worker worker --pool gevent`` must monkey-patch before anything imports sockets,
threads or SSL, exactly as Celery's own ``celery`` command does; this package is imported before
any command module, so the patch happens here.
"""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "worker":
    from celery import maybe_patch_concurrency

    maybe_patch_concurrency(sys.argv, ["-P"], ["--pool"])
