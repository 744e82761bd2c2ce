"""The nemesis's schedule: drawn from a seed, reproducible, without touching any host."""

from __future__ import annotations

import pytest

from rehearsal.nemesis import IMPLEMENTED, KINDS, WORKERS, Timing, draw


def test_the_same_seed_draws_the_same_schedule_and_another_seed_another():
    timing = Timing(lease=10)
    assert draw(7, 5, timing) == draw(7, 5, timing)
    assert draw(7, 5, timing) != draw(8, 5, timing)


def test_each_implemented_kind_is_drawn_once_before_any_twice_and_faults_never_overlap():
    schedule = draw(3, len(IMPLEMENTED) + 2, Timing(lease=10))
    assert sorted(f.kind for f in schedule[:len(IMPLEMENTED)]) == sorted(IMPLEMENTED)
    for earlier, later in zip(schedule, schedule[1:], strict=False):
        assert later.start > earlier.heal
    by_kind = {f.kind: f for f in schedule}
    assert by_kind["redis_cut"].duration > 10  # longer than the lease
    assert by_kind["redis_cut"].target in WORKERS
    assert by_kind["split_brain"].target == "primary"
    assert by_kind["split_brain"].ally in WORKERS


def test_only_implemented_kinds_are_drawn():
    assert set(IMPLEMENTED) <= set(KINDS)
    with pytest.raises(ValueError, match="kinds: 'teleport' is unknown"):
        draw(1, 1, Timing(lease=10), kinds=("teleport",))
    missing = [k for k in KINDS if k not in IMPLEMENTED]
    if missing:
        with pytest.raises(ValueError, match="is not implemented"):
            draw(1, 1, Timing(lease=10), kinds=(missing[0],))
    with pytest.raises(ValueError, match="count: at least one fault"):
        draw(1, 0, Timing(lease=10))
