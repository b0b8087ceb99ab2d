"""Audits: a group served worse is flagged; equal groups are not."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from simulations.audit import audit, format_audit


def _frame(gap: float, n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    group = np.array(["en", "ko"])[rng.integers(2, size=n)]
    reward = rng.normal(0.7, 0.1, n) - gap * (group == "ko")
    return pl.DataFrame(
        {
            "mean_reward": reward,
            "regret": 0.9 - reward,
            "group_locale": group,
            "group_age": np.array(["a", "b"])[rng.integers(2, size=n)],
        }
    )


def test_a_worse_group_is_flagged_with_its_gap():
    [loc, age] = audit(_frame(0.1), policy="lints", random_state=0)
    assert loc.attribute == "locale" and loc.worse == ["ko"]
    assert loc.max_gap == pytest.approx(0.1, abs=0.03)
    lo, hi = loc.max_gap_interval
    assert lo < loc.max_gap < hi
    ko = next(g for g in loc.groups if g.group == "ko")
    assert ko.regret is not None and ko.regret > 0.2
    assert age.worse == []
    text = format_audit([loc, age])
    assert "served worse: ko" in text and "no group is served measurably worse" in text


def test_equal_groups_are_not_flagged():
    flagged = [
        a.worse
        for seed in range(10)
        for a in audit(_frame(0.0, seed=seed), by=["group_locale"], random_state=seed)
    ]
    assert sum(bool(w) for w in flagged) <= 1


def test_small_gaps_under_the_tolerance_are_not_flagged():
    [loc] = audit(_frame(0.03, n=20_000), by=["group_locale"], tolerance=0.05, random_state=0)
    assert loc.worse == []


def test_unknown_group_column_is_named():
    with pytest.raises(ValueError, match="column 'group_planet' not in the data"):
        audit(_frame(0.0), by=["group_planet"])
