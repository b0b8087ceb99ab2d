"""A user's profile as the engine holds it: learned preferences per dimension with confidence,
pins, evidence counts; and the user's edits to it, pins set or cleared and erasure.

A preference is read off the posterior mean of the dimension's level columns (each level's lift
over the dimension's average); its confidence is how far the posterior's standard deviation has
shrunk from the prior's, in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from bandit import _kernels as K
from bandit.catalog import Catalog

if TYPE_CHECKING:
    from bandit.engine import Engine


def user_profile(engine: Engine, user_id: str) -> dict[str, Any]:
    """``Engine.profile``: raises ``KeyError`` for a user the engine does not know."""
    with engine.lock:
        users = engine.users
        row = users.rows([user_id], create=False)
        mu = np.empty((1, engine.n_features))
        var = np.empty((1, engine.n_features))
        K.posterior_batch(row, users.A, users.B, mu, var)
        counts = (int(users.n_feedback[row[0]]), int(users.n_decisions[row[0]]))
        last_seen = float(users.last_seen[row[0]])
    prior_sd = 1.0 / np.sqrt(users.prior_precision)
    return {
        "user_id": user_id,
        "preferences": _preferences(engine.catalog, mu[0], var[0], prior_sd),
        "pins": dict(engine.pins.get(user_id, {})),
        "evidence": {"feedback_events": counts[0], "decisions": counts[1]},
        "last_seen": last_seen or None,
    }


def _preferences(
    catalog: Catalog, mu: np.ndarray, var: np.ndarray, prior_sd: float
) -> dict[str, Any]:
    """Per dimension: the preferred level, the confidence, and each level's score and sd."""
    prefs: dict[str, Any] = {}
    for dim, off in zip(catalog.dimensions, catalog.level_offsets, strict=True):
        block = mu[off : off + len(dim.levels)]
        sd = np.sqrt(var[off : off + len(dim.levels)])
        lift = block - block.mean()
        prefs[dim.name] = {
            "preferred": dim.levels[int(np.argmax(lift))].name,
            "confidence": float(np.clip(1.0 - sd.mean() / prior_sd, 0.0, 1.0)),
            "levels": {
                lv.name: {"score": float(s), "sd": float(e)}
                for lv, s, e in zip(dim.levels, lift, sd, strict=True)
            },
        }
    return prefs


def set_pins(engine: Engine, user_id: str, pins: Mapping[str, str | None]) -> dict[str, str]:
    """``Engine.pin``: set (level) or clear (None) pins per dimension."""
    current = dict(engine.pins.get(user_id, {}))
    for dim, level in pins.items():
        if level is None:
            current.pop(dim, None)
        else:
            engine.catalog.mask({dim: level})  # raises naming the allowed values
            current[dim] = level
    with engine.lock:
        if current:
            engine.pins[user_id] = current
        else:
            engine.pins.pop(user_id, None)
    return current


def forget_user(engine: Engine, user_id: str) -> bool:
    """``Engine.forget``: erase the user's state and pins."""
    with engine.lock:
        had_pins = engine.pins.pop(user_id, None) is not None
        return engine.users.remove(user_id) or had_pins
