"""lints-cf: LinTS warm-started by collab on the scenario's logged history."""

from __future__ import annotations

import polars as pl
import pytest

from simulations import simulate
from simulations.cf import cf_available


@pytest.mark.skipif(cf_available() is not None, reason=f"collab unavailable: {cf_available()}")
def test_cf_warm_start_beats_a_cold_start_in_the_first_rounds():
    r = simulate("default", policies=["lints", "lints-cf"], users=400, rounds=3, seed=0)
    first = r.rounds.filter(pl.col("round") == 0).sort("policy")
    cold, warm = first["mean_reward"].to_list()  # "lints" sorts before "lints-cf"
    assert warm > cold + 0.05
