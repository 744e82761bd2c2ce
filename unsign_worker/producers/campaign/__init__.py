"""Bulk campaigns: a file of rows in, one job per valid row, progress and a report out.

- :mod:`~unsign_worker.producers.campaign.rows`: reading CSV / JSON lines, UTF-8 or GBK;
- :mod:`~unsign_worker.producers.campaign.validate`: the pure row validator (line, field, rule);
- :mod:`~unsign_worker.producers.campaign.ids`: deterministic campaign and job ids (resumable
re-runs);
- :mod:`~unsign_worker.producers.campaign.plan`: file -> counts (or, for small files, jobs), then
start;
- :mod:`~unsign_worker.producers.campaign.spool`: the verdicts of the read, on disk, for the run;
- :mod:`~unsign_worker.producers.campaign.stream`: a run streamed from its verdicts, chunk by
chunk;
- :mod:`~unsign_worker.producers.campaign.enqueue`: pipelined, batched, idempotent enqueueing;
- :mod:`~unsign_worker.store.campaigns`: the campaign's meta, job list, rejects and progress;
- :mod:`~unsign_worker.store.campaign_control`: pause, resume, cancel;
- :mod:`~unsign_worker.producers.campaign.report`: the report and the rejects file.
"""
