"""The one way attune makes randomness."""

from __future__ import annotations

import numpy as np


def check_random_state(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int seed, a Generator (used as is) or None (fresh).

    >>> check_random_state(0).integers(10)
    np.int64(8)
    """
    if random_state is None or isinstance(random_state, int | np.integer):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    raise TypeError(
        f"random_state must be an int, a numpy Generator or None, got {type(random_state).__name__}"
    )
