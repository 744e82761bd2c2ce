"""The exporter's samples as a flat mapping, for tests: ``name{label="v",...}`` -> value."""

from __future__ import annotations

from unsign_worker.ops.exporter import UnsignCollector


def samples_of(collector: UnsignCollector) -> dict[str, float]:
    out = {}
    for family in collector.collect():
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out
