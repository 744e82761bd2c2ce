"""The emulator's own error: a setting, file or admin call it cannot accept.

The emulator shares no code with the worker it is meant to check, not even its exception
tree; callers outside (the CLI, tests) catch :class:`EmulatorConfigError`, a ``ValueError``.
"""

from __future__ import annotations


class EmulatorConfigError(ValueError):
    """A bad emulator setting, agreements or scenario file, or admin request; the message
    names the option or field and the rule it broke (never a key)."""
