"""The operations console: a small server-rendered web application for the people who handle
escalations and run campaigns (``unsign-worker console``).

Pages: Escalations (the dead-letter queue), Campaigns, Health, Lookup. Every action calls the
same library functions as the CLI (:mod:`unsign_worker.ops.operations`) and is journaled with the
operator's name and note. See docs/console.md.
"""

from unsign_worker.console.app import create_app, serve

__all__ = ["create_app", "serve"]
