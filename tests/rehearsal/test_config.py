"""A round's Redis servers and workers run the configuration docs/deployment.md recommends,
unless asked for the unprotected one."""

from __future__ import annotations

import re
from pathlib import Path

from rehearsal.__main__ import round_configs
from rehearsal.round import RoundConfig

DEPLOYMENT = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def recommended() -> dict[str, int]:
    text = " ".join(DEPLOYMENT.read_text(encoding="utf-8").split())
    to_write = re.search(r"`min-replicas-to-write (\d+)` and `min-replicas-max-lag (\d+)`", text)
    acks = re.search(r"`UNSIGN_REPLICA_ACKS=(\d+)` \(the default with a Sentinel URL\)", text)
    assert to_write and acks, "deployment.md no longer states its recommended configuration"
    return {"min-replicas-to-write": int(to_write.group(1)),
            "min-replicas-max-lag": int(to_write.group(2)),
            "UNSIGN_REPLICA_ACKS": int(acks.group(1))}


def test_a_round_runs_the_recommended_configuration_by_default(tmp_path):
    assert RoundConfig(seed=1, number=0, root=tmp_path).configuration == recommended()
    (config,) = round_configs(["run", "--seed", "3", "--out", str(tmp_path)])
    assert config.configuration == recommended()


def test_unsafe_turns_off_both_protections(tmp_path):
    (config,) = round_configs(["run", "--unsafe", "--out", str(tmp_path)])
    assert config.min_replicas == 0 and config.replica_acks == 0
