"""The one-command demo: its processes and its data."""
