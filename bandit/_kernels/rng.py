"""Decision seeds to random draws: a seed stands for one offset into the pool of standard
normal draws and one uniform, so the seed alone reproduces its decision."""

from __future__ import annotations

import numpy as np

from bandit._config import serial


@serial
def splitmix64(x: np.uint64) -> np.uint64:
    """One step of splitmix64: a well-mixed 64-bit hash of ``x``."""
    z = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@serial
def seed_draws(seed: int, pool_rows: int) -> tuple[int, float]:
    """The pool offset and the uniform in [0, 1) that a decision seed stands for."""
    h1 = splitmix64(np.uint64(seed))
    h2 = splitmix64(h1)
    offset = int(h1 % np.uint64(pool_rows))
    u = float(h2 >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return offset, u
