"""The target policy of ``attune evaluate``: an engine policy fitted on the log by replay.

The log is replayed in time order, in chunks: for each chunk, a fresh engine running the target
policy first states its action distribution and posterior-mean rewards at the logged contexts
(before it has seen those rows' rewards), then learns from the logged actions and rewards of
the chunk. The distributions are what the policy would have played with the data it had at the
time (a prequential fit, so no row's own reward informs its own estimate), and the rewards
feed DM and DR. Within one chunk, decisions do not see each other's rewards; a chunk of 256
rows is a small delay next to a log's length.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bandit import Catalog, ContextSpec, Engine
from simulations.logs import LoggedData

REPLAY_CHUNK = 256


def replay_target(
    log: LoggedData,
    policy: str,
    *,
    params: Mapping[str, float] | None = None,
    catalog: Catalog | None = None,
    engine_params: Mapping[str, Any] | None = None,
    chunk: int = REPLAY_CHUNK,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit an engine policy on a log by prequential replay.

    Parameters
    ----------
    log : LoggedData
        Needs the default context's columns (``ContextSpec().n_columns``) and arms of the
        catalog; ``user_id`` scopes the per-user models (one shared user when absent).
    policy : str
        A registered engine policy (``bandit.POLICIES``).
    params : mapping, optional
        The policy's parameters.

    Returns
    -------
    action_dist : float array, shape (n, n_arms)
    expected_rewards : float array, shape (n, n_arms)
    """
    catalog = catalog or Catalog.default()
    width = ContextSpec().n_columns
    if log.context.shape[1] != width:
        raise ValueError(
            f"context: an engine policy needs {width} context columns per row (attune's "
            f"default context), got {log.context.shape[1]}"
        )
    if log.n_arms != catalog.n_arms:
        raise ValueError(
            f"action_dist: the log has {log.n_arms} arms, catalog "
            f"{catalog.name!r} has {catalog.n_arms}"
        )
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if (log.reward < 0).any() or (log.reward > 1).any():
        raise ValueError("reward: an engine learns from rewards in [0, 1]")
    engine = Engine(
        catalog,
        policy=policy,
        policy_params=dict(params or {}),
        random_state=random_state,
        **dict(engine_params or {}),
    )
    users = log.user_id if log.user_id is not None else np.full(log.n_rounds, "log")
    rows = engine.users.rows(users.tolist())
    seeds = np.random.default_rng([random_state, 3]).integers(0, 2**62, size=log.n_rounds)
    dist = np.empty((log.n_rounds, catalog.n_arms))
    q = np.empty((log.n_rounds, catalog.n_arms))
    for start in range(0, log.n_rounds, chunk):
        s = slice(start, start + chunk)
        sel = engine.decide_arrays(rows[s], log.context[s], seeds=seeds[s])
        dist[s] = sel.action_dist
        q[s] = engine.expected_rewards(rows[s], log.context[s])
        engine.learn_arrays(rows[s], log.action[s], log.context[s], log.reward[s])
    return dist, np.clip(q, 0.0, 1.0)
