"""The rehearsal: a production-shaped run of unsign-worker with every process on a host of its
own (Linux network namespaces), a seeded nemesis and an independent checker.
``python -m rehearsal --help``; see docs/rehearsal.md."""
