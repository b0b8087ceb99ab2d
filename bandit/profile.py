"""A user's profile as the engine holds it: learned preferences per dimension with confidence,
pins, declared user features, evidence counts; and the edits to it: pins and features set or
cleared, and erasure.

A preference is read off what the model predicts for the user on a plain request: the population
part of their tenant (the shared model's context-bias column) plus their own posterior mean, per
dimension each level's lift over the dimension's average; its confidence is how far the user's
posterior standard deviation has shrunk from the prior's, in [0, 1]. So a taste shows in the
profile whether the user taught it alone or shares it with others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
        width = engine.catalog.attributes.shape[1]
        mu[0, :width] += engine.shared.mean[users.tenant[row[0]], :, 0]
        counts = (int(users.n_feedback[row[0]]), int(users.n_decisions[row[0]]))
        last_seen = float(users.last_seen[row[0]])
        prior_sd = 1.0 / np.sqrt(float(users.prior_prec[row[0]]))
        features = dict(engine.user_features.get(user_id, {}))
    return {
        "user_id": user_id,
        "preferences": _preferences(engine.catalog, mu[0], var[0], prior_sd),
        "pins": dict(engine.pins.get(user_id, {})),
        "features": features,
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


def set_user_features(
    engine: Engine, user_id: str, features: Mapping[str, Any | None]
) -> dict[str, Any]:
    """``Engine.set_user_features``: only declared user-scope features are remembered; a value
    of None clears one. Raises ValueError naming a bad feature."""
    spec = engine.context
    for name, value in features.items():
        declared = spec.declared(name)
        if declared is None or declared.scope != "user":
            raise ValueError(f"features.{name}: not a declared user-scope feature")
        if value is not None:
            spec.validate({name: value})
    with engine.lock:
        current = {**engine.user_features.get(user_id, {}), **features}
        current = {k: v for k, v in current.items() if v is not None}
        if current:
            engine.user_features[user_id] = current
        else:
            engine.user_features.pop(user_id, None)
    return current


def forget_user(engine: Engine, user_id: str) -> bool:
    """``Engine.forget``: erase the user's state, pins and features."""
    return forget_users(engine, [user_id]) == 1


def forget_users(engine: Engine, user_ids: Sequence[str]) -> int:
    """``Engine.forget_many``: erase the users' state, pins and features under one hold of
    the lock, their rows reset in one pass; returns how many of them the engine knew."""
    with engine.lock:
        known = set()
        for user_id in user_ids:
            had_pins = engine.pins.pop(user_id, None) is not None
            had_features = engine.user_features.pop(user_id, None) is not None
            if had_pins or had_features or user_id in engine.users:
                known.add(user_id)
        engine.users.remove_many(user_ids)
        return len(known)
