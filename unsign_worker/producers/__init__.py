"""Producers: the Python client, the producer that writes a job record then its message, and
campaigns from a file."""
