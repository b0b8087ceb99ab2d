"""A logged decision answered again: why that strategy, by the model as it stands now.

An idempotent retry that reaches a process which did not make the decision (after a restart,
or on another API replica) is answered with what was logged: the arm, propensity, seed and
locale, and an explanation computed here from the user's current posterior, the request's
logged context and the action distribution where it was kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from bandit import _kernels as K
from bandit.explain import Reason, explain
from bandit.shared import tenant_of

if TYPE_CHECKING:
    from bandit.engine import Engine


def explain_logged(
    engine: Engine,
    user_id: str,
    arm: int,
    context: Sequence[float],
    action_dist: Sequence[float] = (),
    propensity: float = 1.0,
) -> tuple[Reason, ...]:
    """Reasons for a logged choice of ``arm`` for ``user_id`` (``Engine.explain_logged``).

    Without ``action_dist`` the distribution is taken as ``propensity`` on ``arm``, which
    leaves exploration unexplained. A user the engine does not hold (a serving engine holds
    users once they gave feedback) is explained by their tenant's population part alone: no
    deviation from it is known.
    """
    n_arms = engine.n_arms
    if not 0 <= arm < n_arms:
        raise ValueError(f"arm: expected an arm index in [0, {n_arms}), got {arm}")
    ctx = np.asarray(context, dtype=np.float64)
    if ctx.shape != (engine.n_context,):
        raise ValueError(f"context: expected {engine.n_context} numbers, got {ctx.shape}")
    dist = np.asarray(action_dist, dtype=np.float64)
    if dist.shape != (n_arms,):
        dist = np.zeros(n_arms)
        dist[arm] = propensity
    mu = np.zeros((1, engine.n_features))
    with engine.lock:
        users, shared = engine.users, engine.shared
        row = users.ids.get(user_id)
        if row is not None:
            rows = np.array([row], dtype=np.int64)
            K.posterior_batch(rows, users.A, users.B, mu, np.empty_like(mu))
            t: int | None = int(users.tenant[row])
        else:
            t = shared.tenants.get(tenant_of(user_id))
        W = shared.mean[t].copy() if t is not None else np.zeros_like(shared.mean[0])
    return explain(engine.catalog, arm, mu[0], W, ctx, dist, spec=engine.context)
