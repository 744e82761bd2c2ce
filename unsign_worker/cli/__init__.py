"""The ``unsign-worker`` command line: one module per command family."""
